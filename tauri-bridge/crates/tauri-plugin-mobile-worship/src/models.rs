//! The types commands take and return, and the payloads of the events the plugin emits.
//!
//! They are the sidecar's own (`docs/api.md`): field names are the wire names,
//! snake_case, in both directions.

use serde::{Deserialize, Serialize};

pub use sidecar_client::types::{
    ConnectedParams, ConnectionState, DisconnectReason, DisconnectedParams, DisplayClass, IceServer,
    LeaderChangedParams, LeaderState, LeaderStatus, MeshPolicy, MessageParams, NetworkChangedParams,
    OneOrMany, OpenPairingParams, PairedParams, PairingParams, PairingWindow, PeerInfo,
    PeerListChangedParams, PeerType, PingPeerParams, PingResult, RendezvousStatus, RoomKeyParams,
    SendControlMessageParams, SendResult, StartPeerParams, StateEntry, StateVersion,
};
pub use sidecar_client::{ExitInfo, SidecarEvent};

/// Tauri event names the plugin emits: the sidecar's notification methods, unchanged.
pub mod events {
    pub use sidecar_client::types::methods::{
        CONNECTED, DISCONNECTED, LEADER_CHANGED, MESSAGE, NETWORK_CHANGED, PAIRED, PAIRING,
        PEER_LIST_CHANGED, ROOM_KEY, STATE,
    };
    /// Lifecycle of the sidecar process; payload [`super::SidecarEvent`]
    /// (`{"event": "started" | "exited" | "restarting" | "restart_failed" | "gave_up", ...}`).
    pub const SIDECAR: &str = "mobile-worship:sidecar";
    /// Sent after every restart, once the plugin tried to rejoin; payload
    /// [`super::Rejoined`].
    pub const REJOINED: &str = "mobile-worship:rejoined";
}

/// Payload of [`events::REJOINED`]: the new sidecar's `start_peer` result with the last
/// params, its error, or neither when there was nothing to rejoin (never started, stopped,
/// or rejoining turned off).
#[derive(Debug, Serialize)]
pub struct Rejoined {
    pub restart: u32,
    pub peer: Option<PeerInfo>,
    pub error: Option<crate::Error>,
}

/// Where the sidecar comes from.
#[derive(Debug, Clone)]
pub enum SidecarSource {
    /// `app.shell().sidecar(name)`: the binary bundled through `bundle.externalBin`, run by
    /// tauri-plugin-shell in a process group of its own, its output read as raw bytes.
    Shell { name: String, args: Vec<String> },
    /// A command run with `tokio::process` (e.g. the Python dev environment).
    Command(sidecar_client::SidecarCommand),
}

impl Default for SidecarSource {
    fn default() -> Self {
        SidecarSource::Shell { name: crate::SIDECAR_NAME.to_owned(), args: Vec::new() }
    }
}

/// Result of the plugin's bookkeeping for [`crate::MobileWorship::status`].
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct SidecarStatus {
    pub running: bool,
    pub pid: Option<u32>,
    pub restarts: u32,
    /// Why it is not running, when it could not be started.
    pub error: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// The shape `useWebRTC` reads (frontend-hook/src/transport.ts, `RejoinedEvent`).
    #[test]
    fn rejoined_serializes_restart_peer_and_error() {
        let failed =
            Rejoined { restart: 2, peer: None, error: Some(crate::Error::Unavailable("no binary".into())) };
        assert_eq!(
            serde_json::to_value(&failed).unwrap(),
            json!({"restart": 2, "peer": null,
                   "error": {"kind": "unavailable", "code": null,
                             "message": "the sidecar is unavailable: no binary", "data": null}})
        );
        let nothing = Rejoined { restart: 1, peer: None, error: None };
        assert_eq!(
            serde_json::to_value(&nothing).unwrap(),
            json!({"restart": 1, "peer": null, "error": null})
        );
    }
}
