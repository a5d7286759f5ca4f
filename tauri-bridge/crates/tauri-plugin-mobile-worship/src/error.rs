//! The error every command returns, serialized for the webview.

use serde::ser::{Serialize, SerializeStruct, Serializer};

/// An error of the plugin.  Reaches JavaScript as
/// `{ kind: string, code: number | null, message: string, data: unknown }`:
/// `kind` is stable (`"not_started"`, `"peer_not_connected"`, `"invalid_params"`,
/// `"sidecar_exited"`, `"timeout"`, `"unavailable"`, ...); `code` is the JSON-RPC error code
/// when the sidecar answered with one; `data` its `data` (for `invalid_params`:
/// `{field, reason}`).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The sidecar answered with an error, or the call failed on the way.
    #[error(transparent)]
    Sidecar(#[from] sidecar_client::Error),
    /// The command's args are not an object of params.
    #[error("invalid params: {0}")]
    InvalidArgs(String),
    /// The sidecar could not be started when the app started.
    #[error("the sidecar is unavailable: {0}")]
    Unavailable(String),
    #[error(transparent)]
    Shell(#[from] tauri_plugin_shell::Error),
    #[error(transparent)]
    Tauri(#[from] tauri::Error),
}

impl Error {
    /// Stable machine-readable kind.
    pub fn kind(&self) -> &'static str {
        match self {
            Error::Sidecar(e) => e.kind(),
            Error::InvalidArgs(_) => "invalid_params",
            Error::Unavailable(_) => "unavailable",
            Error::Shell(_) => "shell",
            Error::Tauri(_) => "tauri",
        }
    }
}

impl Serialize for Error {
    fn serialize<S: Serializer>(&self, serializer: S) -> std::result::Result<S::Ok, S::Error> {
        let (code, data) = match self {
            Error::Sidecar(e) => (e.code(), e.rpc().and_then(|r| r.data.clone())),
            // Shaped like the sidecar's own -32602.
            Error::InvalidArgs(reason) => (
                Some(sidecar_client::codes::INVALID_PARAMS),
                Some(serde_json::json!({"field": null, "reason": reason})),
            ),
            _ => (None, None),
        };
        let mut s = serializer.serialize_struct("Error", 4)?;
        s.serialize_field("kind", self.kind())?;
        s.serialize_field("code", &code)?;
        s.serialize_field("message", &self.to_string())?;
        s.serialize_field("data", &data)?;
        s.end()
    }
}

pub type Result<T> = std::result::Result<T, Error>;

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn serializes_kind_code_message_data() {
        let rpc = sidecar_client::RpcError {
            code: -32602,
            message: "Invalid params".into(),
            data: Some(json!({"field": "peer_id", "reason": "missing"})),
        };
        let e = Error::from(sidecar_client::Error::from(rpc));
        assert_eq!(
            serde_json::to_value(&e).unwrap(),
            json!({"kind": "invalid_params", "code": -32602,
                   "message": "invalid params: Invalid params (-32602): peer_id: missing",
                   "data": {"field": "peer_id", "reason": "missing"}})
        );
        let e = Error::Unavailable("no binary".into());
        assert_eq!(
            serde_json::to_value(&e).unwrap(),
            json!({"kind": "unavailable", "code": null, "message": "the sidecar is unavailable: no binary", "data": null})
        );
    }
}
