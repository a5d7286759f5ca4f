//! Errors: JSON-RPC error objects mapped to variants by code, plus the client's own.

use std::fmt;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::transport::ExitInfo;

/// JSON-RPC error codes used by the sidecar (docs/api.md, "Errors").
pub mod codes {
    pub const PARSE_ERROR: i64 = -32700;
    pub const INVALID_REQUEST: i64 = -32600;
    pub const METHOD_NOT_FOUND: i64 = -32601;
    pub const INVALID_PARAMS: i64 = -32602;
    pub const INTERNAL_ERROR: i64 = -32603;
    pub const NOT_STARTED: i64 = -32001;
    pub const ALREADY_STARTED: i64 = -32002;
    pub const PEER_NOT_CONNECTED: i64 = -32003;
    pub const PAYLOAD_TOO_LARGE: i64 = -32004;
}

/// A JSON-RPC error object as the sidecar sent it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RpcError {
    pub code: i64,
    pub message: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub data: Option<Value>,
}

impl RpcError {
    /// `data.field` (set by the sidecar for `-32602`): the offending param.
    pub fn field(&self) -> Option<&str> {
        self.data.as_ref()?.get("field")?.as_str()
    }

    /// `data.reason`: why the param (or the request) was refused.
    pub fn reason(&self) -> Option<&str> {
        self.data.as_ref()?.get("reason")?.as_str()
    }
}

impl fmt::Display for RpcError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ({})", self.message, self.code)?;
        match (self.field(), self.reason()) {
            (Some(field), Some(reason)) => write!(f, ": {field}: {reason}"),
            (None, Some(reason)) => write!(f, ": {reason}"),
            _ => match &self.data {
                Some(Value::Null) | None => Ok(()),
                Some(data) => write!(f, ": {data}"),
            },
        }
    }
}

/// Everything a call can fail with.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// `-32001`: `start_peer` has not been called.
    #[error("peer not started: {0}")]
    NotStarted(RpcError),
    /// `-32002`: `start_peer` was already called.
    #[error("peer already started: {0}")]
    AlreadyStarted(RpcError),
    /// `-32003`: a named peer has no open data channel.
    #[error("peer not connected: {0}")]
    PeerNotConnected(RpcError),
    /// `-32004`: the payload is over 64 KiB serialized.
    #[error("payload too large: {0}")]
    PayloadTooLarge(RpcError),
    /// `-32602`: bad params; [`RpcError::field`] and [`RpcError::reason`] say which and why.
    #[error("invalid params: {0}")]
    InvalidParams(RpcError),
    /// `-32601`.
    #[error("method not found: {0}")]
    MethodNotFound(RpcError),
    /// `-32600`.
    #[error("invalid request: {0}")]
    InvalidRequest(RpcError),
    /// `-32700`.
    #[error("parse error: {0}")]
    ParseError(RpcError),
    /// `-32603` (the sidecar also uses it for a call that ran past its own 30 s bound).
    #[error("sidecar internal error: {0}")]
    Internal(RpcError),
    /// Any other code.
    #[error("sidecar error: {0}")]
    Rpc(RpcError),

    /// No answer within the call's timeout.  The sidecar is left running.
    #[error("`{method}` timed out after {timeout:?}")]
    Timeout { method: String, timeout: Duration },
    /// The sidecar process exited (or was killed) before answering.
    #[error("sidecar exited before answering: {0}")]
    SidecarExited(ExitInfo),
    /// The client was shut down (or is shutting down); no new calls.
    #[error("sidecar client is shut down")]
    Closed,
    /// No sidecar is running right now (e.g. between a crash and its restart).
    #[error("sidecar is not running{}", .0.as_deref().map(|s| format!(": {s}")).unwrap_or_default())]
    NotRunning(Option<String>),
    /// The sidecar could not be started.
    #[error("could not start the sidecar `{program}`: {source}")]
    Spawn {
        program: String,
        #[source]
        source: std::io::Error,
    },
    /// Writing to the sidecar's stdin failed.
    #[error("could not write to the sidecar: {0}")]
    Io(#[from] std::io::Error),
    /// The params could not be serialized.
    #[error("could not encode the params of `{method}`: {source}")]
    Encode {
        method: String,
        #[source]
        source: serde_json::Error,
    },
    /// The result did not have the expected type.
    #[error("unexpected result of `{method}`: {source}")]
    Decode {
        method: String,
        #[source]
        source: serde_json::Error,
    },
}

impl From<RpcError> for Error {
    fn from(e: RpcError) -> Self {
        match e.code {
            codes::NOT_STARTED => Error::NotStarted(e),
            codes::ALREADY_STARTED => Error::AlreadyStarted(e),
            codes::PEER_NOT_CONNECTED => Error::PeerNotConnected(e),
            codes::PAYLOAD_TOO_LARGE => Error::PayloadTooLarge(e),
            codes::INVALID_PARAMS => Error::InvalidParams(e),
            codes::METHOD_NOT_FOUND => Error::MethodNotFound(e),
            codes::INVALID_REQUEST => Error::InvalidRequest(e),
            codes::PARSE_ERROR => Error::ParseError(e),
            codes::INTERNAL_ERROR => Error::Internal(e),
            _ => Error::Rpc(e),
        }
    }
}

impl Error {
    /// The JSON-RPC error object, when the sidecar answered with one.
    pub fn rpc(&self) -> Option<&RpcError> {
        match self {
            Error::NotStarted(e)
            | Error::AlreadyStarted(e)
            | Error::PeerNotConnected(e)
            | Error::PayloadTooLarge(e)
            | Error::InvalidParams(e)
            | Error::MethodNotFound(e)
            | Error::InvalidRequest(e)
            | Error::ParseError(e)
            | Error::Internal(e)
            | Error::Rpc(e) => Some(e),
            _ => None,
        }
    }

    /// The JSON-RPC error code, when the sidecar answered with an error.
    pub fn code(&self) -> Option<i64> {
        self.rpc().map(|e| e.code)
    }

    /// A stable, machine-readable name of the variant (used by the Tauri plugin).
    pub fn kind(&self) -> &'static str {
        match self {
            Error::NotStarted(_) => "not_started",
            Error::AlreadyStarted(_) => "already_started",
            Error::PeerNotConnected(_) => "peer_not_connected",
            Error::PayloadTooLarge(_) => "payload_too_large",
            Error::InvalidParams(_) => "invalid_params",
            Error::MethodNotFound(_) => "method_not_found",
            Error::InvalidRequest(_) => "invalid_request",
            Error::ParseError(_) => "parse_error",
            Error::Internal(_) => "internal",
            Error::Rpc(_) => "rpc",
            Error::Timeout { .. } => "timeout",
            Error::SidecarExited(_) => "sidecar_exited",
            Error::Closed => "closed",
            Error::NotRunning(_) => "not_running",
            Error::Spawn { .. } => "spawn",
            Error::Io(_) => "io",
            Error::Encode { .. } => "encode",
            Error::Decode { .. } => "decode",
        }
    }
}

/// Result of a client operation.
pub type Result<T, E = Error> = std::result::Result<T, E>;

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn err(v: Value) -> Error {
        Error::from(serde_json::from_value::<RpcError>(v).unwrap())
    }

    #[test]
    fn codes_map_to_variants() {
        let cases: [(i64, &str); 10] = [
            (-32001, "not_started"),
            (-32002, "already_started"),
            (-32003, "peer_not_connected"),
            (-32004, "payload_too_large"),
            (-32602, "invalid_params"),
            (-32601, "method_not_found"),
            (-32600, "invalid_request"),
            (-32700, "parse_error"),
            (-32603, "internal"),
            (-31999, "rpc"),
        ];
        for (code, kind) in cases {
            let e = err(json!({"code": code, "message": "m"}));
            assert_eq!(e.kind(), kind, "code {code}");
            assert_eq!(e.code(), Some(code));
        }
        assert!(matches!(err(json!({"code": -32001, "message": "m"})), Error::NotStarted(_)));
        assert!(matches!(err(json!({"code": -32002, "message": "m"})), Error::AlreadyStarted(_)));
        assert!(matches!(err(json!({"code": -32003, "message": "m"})), Error::PeerNotConnected(_)));
        assert!(matches!(err(json!({"code": -32004, "message": "m"})), Error::PayloadTooLarge(_)));
    }

    #[test]
    fn invalid_params_keeps_its_data() {
        let e = err(json!({"code": -32602, "message": "Invalid params",
                           "data": {"field": "display_class", "reason": "required when peer_type is display"}}));
        let Error::InvalidParams(rpc) = &e else { panic!("{e:?}") };
        assert_eq!(rpc.field(), Some("display_class"));
        assert_eq!(rpc.reason(), Some("required when peer_type is display"));
        assert_eq!(
            e.to_string(),
            "invalid params: Invalid params (-32602): display_class: required when peer_type is display"
        );
    }

    #[test]
    fn display_of_other_data() {
        let e = err(json!({"code": -32601, "message": "Method not found", "data": "nope"}));
        assert_eq!(e.to_string(), "method not found: Method not found (-32601): \"nope\"");
        let e = err(json!({"code": -32001, "message": "Peer not started: call start_peer first"}));
        assert_eq!(e.to_string(), "peer not started: Peer not started: call start_peer first (-32001)");
    }

    #[test]
    fn client_side_errors_have_no_code() {
        assert_eq!(Error::Closed.code(), None);
        assert_eq!(Error::Closed.kind(), "closed");
        let t = Error::Timeout { method: "ping_peer".into(), timeout: Duration::from_secs(1) };
        assert_eq!(t.to_string(), "`ping_peer` timed out after 1s");
        assert_eq!(Error::NotRunning(None).to_string(), "sidecar is not running");
    }
}
