//! The types of the stdio contract (`docs/api.md`), as serde structs.
//!
//! Field names are exactly the wire names.  Structs do not deny unknown fields and the
//! enums the sidecar sends have an `Unknown` catch-all, because docs/api.md may grow by optional
//! fields and values.  Optional params are skipped when `None`, so the sidecar applies its
//! own defaults.

use std::net::Ipv4Addr;

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// `"controller"` or `"display"`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PeerType {
    Controller,
    Display,
}

/// Which screen a display drives.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DisplayClass {
    Audience,
    Stage,
    Lobby,
}

/// State of the data channel to a peer (`"self"` for this peer).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ConnectionState {
    New,
    Connecting,
    Connected,
    Disconnected,
    #[serde(rename = "self")]
    SelfPeer,
    /// A value this client does not know yet.
    #[serde(other)]
    Unknown,
}

/// One peer of the room as the sidecar sees it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PeerInfo {
    pub peer_id: String,
    pub name: String,
    pub peer_type: PeerType,
    /// `None` for a controller.
    pub display_class: Option<DisplayClass>,
    /// Milliseconds since the Unix epoch.
    pub started_at: u64,
    pub is_leader: bool,
    pub connection_state: ConnectionState,
    /// The open data channel to this peer goes through a TURN relay.
    #[serde(default)]
    pub relayed: bool,
    /// `"direct"` (a WebRTC data channel) or `"relay"` (through the leader, for a web peer).
    #[serde(default = "direct")]
    pub via: String,
}

fn direct() -> String {
    "direct".to_owned()
}

/// Election state of this peer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LeaderState {
    Idle,
    /// No usable network address: waiting for one (the election is paused).
    Offline,
    Discovering,
    Electing,
    Leader,
    Follower,
    #[serde(other)]
    Unknown,
}

/// Result of `get_leader_status`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LeaderStatus {
    pub state: LeaderState,
    pub leader_id: Option<String>,
    pub is_leader: bool,
    pub term: u64,
    pub leader: Option<PeerInfo>,
    pub signaling_url: Option<String>,
    /// The local IPv4 addresses the peer announces and listens on now.
    #[serde(default)]
    pub addresses: Vec<String>,
    /// The room has a key: only its members can join it.
    #[serde(default)]
    pub keyed: bool,
    /// How this peer heard of its leader: `"mdns"`, `"rendezvous"`, or both.
    #[serde(default)]
    pub found_by: Vec<String>,
    /// `ip:port` of the room's signaling servers, the leader's first: pass them as
    /// `rendezvous` on the next start.
    #[serde(default)]
    pub room_addresses: Vec<String>,
    /// What became of each rendezvous target.
    #[serde(default)]
    pub rendezvous: Vec<RendezvousStatus>,
    /// This device's open pairing window, if any.
    #[serde(default)]
    pub pairing: Option<PairingWindow>,
    /// The display page this device serves, for a phone, tablet or TV to open.
    #[serde(default)]
    pub display_url: Option<String>,
}

/// An open pairing window (`open_pairing`): the code a new device starts with.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PairingWindow {
    /// Six digits.
    pub code: String,
    /// Milliseconds since the Unix epoch.
    pub expires_at: u64,
    pub tries_left: u64,
    pub uses_left: u64,
    /// The pairing link's one-time secret, until it is used.
    #[serde(default)]
    pub token: Option<String>,
    /// The display page with the token: show it as a QR code.
    #[serde(default)]
    pub pair_url: Option<String>,
}

/// Params of `open_pairing`; `None` leaves the sidecar's default (120 s, one device).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct OpenPairingParams {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ttl_s: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub uses: Option<u64>,
}

/// Params of `webrtc:paired`: this device paired; store `room_key` for the next start.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PairedParams {
    pub room: String,
    pub room_key: String,
}

/// Params of `webrtc:room_key`: a key to store (`"created"` here, or `"rotated"` by a member).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RoomKeyParams {
    pub room_key: String,
    pub reason: String,
    /// The devices this rotation shut out of the room (their channels are closed).
    #[serde(default)]
    pub revoked: Vec<String>,
}

/// Params of `rotate_room_key`: the devices to shut out (none: only a new key).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RotateRoomKeyParams {
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub revoke: Vec<String>,
}

/// Result of `rotate_room_key`: who holds the new key, who was shut out.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RotationResult {
    pub took: Vec<String>,
    pub revoked: Vec<String>,
}

/// Params of `webrtc:pairing`: this device's pairing window changed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PairingParams {
    /// `"open"` or `"closed"`.
    pub state: String,
    /// `"opened"`, `"tried"`, `"paired"`, `"expired"`, `"exhausted"` or `"closed"`.
    pub reason: String,
    pub window: Option<PairingWindow>,
    /// Where the try came from (`"tried"`), or the device that paired.
    #[serde(default)]
    pub address: Option<String>,
}

/// One rendezvous target of `start_peer` and what became of it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RendezvousStatus {
    pub target: String,
    /// `"waiting"`, `"asking"`, `"answered"`, `"unreachable"` or `"refused"`.
    pub state: String,
    /// What it resolved to.
    pub addresses: Vec<String>,
    pub error: Option<String>,
}

/// Which pairs open a data channel.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MeshPolicy {
    /// Every pair with at least one controller (the sidecar's default).
    Controllers,
    /// Every pair.
    Full,
}

/// `urls` of an [`IceServer`]: one URL or several.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum OneOrMany {
    One(String),
    Many(Vec<String>),
}

impl From<&str> for OneOrMany {
    fn from(s: &str) -> Self {
        OneOrMany::One(s.to_owned())
    }
}

impl From<String> for OneOrMany {
    fn from(s: String) -> Self {
        OneOrMany::One(s)
    }
}

impl From<Vec<String>> for OneOrMany {
    fn from(v: Vec<String>) -> Self {
        OneOrMany::Many(v)
    }
}

/// A STUN or TURN server (WebRTC's `RTCIceServer`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IceServer {
    pub urls: OneOrMany,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub username: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub credential: Option<String>,
}

/// Params of `start_peer`.  `None` fields are not sent: the sidecar's defaults apply.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StartPeerParams {
    /// Device name, 1–64 characters.
    pub name: String,
    pub peer_type: PeerType,
    /// Required for a display, absent for a controller.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub display_class: Option<DisplayClass>,
    /// Signaling port if this peer becomes leader (sidecar default 3010; 0: any free port).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub signaling_port: Option<u16>,
    /// Room name (sidecar default `"default"`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub room: Option<String>,
    /// Shared secret of the room; never crosses the network.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub room_key: Option<String>,
    /// Make a new room key (the room's first device); `webrtc:room_key` carries it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub create_room_key: Option<bool>,
    /// Join a keyed room by pairing with a member's code (`open_pairing`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pairing_code: Option<String>,
    /// The same with a pairing link's one-time token (a scanned QR code).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pairing_token: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mesh: Option<MeshPolicy>,
    /// Echo every received control message back to its sender.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub echo: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ice_servers: Option<Vec<IceServer>>,
    /// `"relay"`: data channels only through the TURN server (sidecar default `"all"`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ice_transport_policy: Option<String>,
    /// IPv4 addresses to announce, browse and gather on (sidecar default: all non-loopback).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub interfaces: Option<Vec<Ipv4Addr>>,
    /// `host[:port]` of the room's signaling servers to ask over unicast, where multicast
    /// does not reach (e.g. the `room_addresses` of the last run).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rendezvous: Option<Vec<String>>,
}

impl StartPeerParams {
    /// A controller named `name`, every other field left to the sidecar's defaults.
    pub fn controller(name: impl Into<String>) -> Self {
        Self::new(name, PeerType::Controller, None)
    }

    /// A display of class `class` named `name`, every other field left to the defaults.
    pub fn display(name: impl Into<String>, class: DisplayClass) -> Self {
        Self::new(name, PeerType::Display, Some(class))
    }

    fn new(name: impl Into<String>, peer_type: PeerType, display_class: Option<DisplayClass>) -> Self {
        Self {
            name: name.into(),
            peer_type,
            display_class,
            signaling_port: None,
            room: None,
            room_key: None,
            create_room_key: None,
            pairing_code: None,
            pairing_token: None,
            mesh: None,
            echo: None,
            ice_servers: None,
            ice_transport_policy: None,
            interfaces: None,
            rendezvous: None,
        }
    }
}

/// Params of `send_control_message`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SendControlMessageParams {
    /// Any JSON value, at most 64 KiB serialized.
    pub payload: Value,
    /// A peer id or a list of them; `None`: every connected peer.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub to: Option<OneOrMany>,
    /// Only displays of that class.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub display_class: Option<DisplayClass>,
    /// The payload also becomes the room's value of this key (a `null` payload clears it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retain: Option<String>,
}

impl SendControlMessageParams {
    /// `payload` to every connected peer.
    pub fn broadcast(payload: Value) -> Self {
        Self { payload, to: None, display_class: None, retain: None }
    }

    /// `payload` to one peer.
    pub fn to(peer_id: impl Into<String>, payload: Value) -> Self {
        Self { payload, to: Some(OneOrMany::One(peer_id.into())), display_class: None, retain: None }
    }

    /// Sets the room's value of `key` (`null` clears it), with no message.
    pub fn set_state(key: impl Into<String>, value: Value) -> Self {
        Self {
            payload: value,
            to: Some(OneOrMany::Many(vec![])),
            display_class: None,
            retain: Some(key.into()),
        }
    }
}

/// A write's place in the room's order: `time`, then `counter`, then the origin's peer id.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct StateVersion {
    /// The writer's hybrid clock, milliseconds since the Unix epoch.
    pub time: u64,
    pub counter: u64,
}

/// One key of the room's retained state (`get_state`, `webrtc:state`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StateEntry {
    pub key: String,
    /// `null`: the key was cleared.
    pub value: Value,
    /// The peer that wrote it.
    pub origin: String,
    pub version: StateVersion,
}

/// Result of `send_control_message`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SendResult {
    pub message_id: String,
    pub sent_to: Vec<String>,
}

/// Params of `ping_peer`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PingPeerParams {
    pub peer_id: String,
}

/// Result of `ping_peer`.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct PingResult {
    pub rtt_ms: f64,
}

/// Why a data channel closed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DisconnectReason {
    Closed,
    Timeout,
    Failed,
    Left,
    Revoked,
    #[serde(other)]
    Unknown,
}

/// Params of `webrtc:connected`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConnectedParams {
    pub peer: PeerInfo,
}

/// Params of `webrtc:disconnected`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DisconnectedParams {
    pub peer_id: String,
    pub reason: DisconnectReason,
    /// Messages sent to that peer that it never acknowledged.
    #[serde(default)]
    pub unacknowledged: Vec<String>,
}

/// Params of `webrtc:message`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MessageParams {
    /// Sender's peer id.
    pub from: String,
    pub message_id: String,
    pub payload: Value,
    /// Milliseconds since the Unix epoch, sender's clock.
    pub sent_at: u64,
}

/// Params of `webrtc:leader_changed`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LeaderChangedParams {
    pub leader_id: Option<String>,
    pub is_leader: bool,
    pub term: u64,
}

/// Params of `webrtc:peer_list_changed`: every peer of the room this peer knows, itself
/// included.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PeerListChangedParams {
    pub peers: Vec<PeerInfo>,
}

/// Params of `webrtc:network_changed`: the addresses in use, or none (`online` false).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NetworkChangedParams {
    pub addresses: Vec<String>,
    pub online: bool,
}

/// A notification from the sidecar, tagged by its JSON-RPC `method`.
///
/// Serializes as `{"method": "...", "params": {...}}`.  Methods this client does not know
/// (or known methods whose params do not parse) arrive as [`Notification::Other`] rather
/// than being lost.
#[derive(Debug, Clone, PartialEq)]
pub enum Notification {
    /// `webrtc:connected`
    Connected(ConnectedParams),
    /// `webrtc:disconnected`
    Disconnected(DisconnectedParams),
    /// `webrtc:message`
    Message(MessageParams),
    /// `webrtc:leader_changed`
    LeaderChanged(LeaderChangedParams),
    /// `webrtc:peer_list_changed`
    PeerListChanged(PeerListChangedParams),
    /// `webrtc:network_changed`
    NetworkChanged(NetworkChangedParams),
    /// `webrtc:state`
    State(StateEntry),
    /// `webrtc:paired`
    Paired(PairedParams),
    /// `webrtc:room_key`
    RoomKey(RoomKeyParams),
    /// `webrtc:pairing`
    Pairing(PairingParams),
    /// Any other notification, untyped.
    Other { method: String, params: Value },
}

impl Serialize for Notification {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeStruct as _;
        let mut s = serializer.serialize_struct("Notification", 2)?;
        s.serialize_field("method", self.method())?;
        s.serialize_field("params", &self.params_json())?;
        s.end()
    }
}

impl<'de> Deserialize<'de> for Notification {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        struct Raw {
            method: String,
            #[serde(default)]
            params: Value,
        }
        let raw = Raw::deserialize(deserializer)?;
        Notification::from_parts(&raw.method, raw.params).map_err(serde::de::Error::custom)
    }
}

/// Method names of the notifications docs/api.md defines.
pub mod methods {
    pub const CONNECTED: &str = "webrtc:connected";
    pub const DISCONNECTED: &str = "webrtc:disconnected";
    pub const MESSAGE: &str = "webrtc:message";
    pub const LEADER_CHANGED: &str = "webrtc:leader_changed";
    pub const PEER_LIST_CHANGED: &str = "webrtc:peer_list_changed";
    pub const NETWORK_CHANGED: &str = "webrtc:network_changed";
    pub const STATE: &str = "webrtc:state";
    pub const PAIRED: &str = "webrtc:paired";
    pub const ROOM_KEY: &str = "webrtc:room_key";
    pub const PAIRING: &str = "webrtc:pairing";
    /// Every notification method of docs/api.md.
    pub const ALL: [&str; 10] = [
        CONNECTED,
        DISCONNECTED,
        MESSAGE,
        STATE,
        LEADER_CHANGED,
        PEER_LIST_CHANGED,
        NETWORK_CHANGED,
        PAIRED,
        ROOM_KEY,
        PAIRING,
    ];
}

impl Notification {
    /// Builds the typed notification from a method and its params.  Unknown methods give
    /// [`Notification::Other`]; a known method with params that do not fit is an error.
    pub fn from_parts(method: &str, params: Value) -> Result<Self, serde_json::Error> {
        use serde::de::Error as _;
        let params = match params {
            Value::Null => Value::Object(Default::default()),
            p => p,
        };
        Ok(match method {
            methods::CONNECTED => Self::Connected(serde_json::from_value(params)?),
            methods::DISCONNECTED => Self::Disconnected(serde_json::from_value(params)?),
            methods::MESSAGE => Self::Message(serde_json::from_value(params)?),
            methods::LEADER_CHANGED => Self::LeaderChanged(serde_json::from_value(params)?),
            methods::PEER_LIST_CHANGED => Self::PeerListChanged(serde_json::from_value(params)?),
            methods::NETWORK_CHANGED => Self::NetworkChanged(serde_json::from_value(params)?),
            methods::STATE => Self::State(serde_json::from_value(params)?),
            methods::PAIRED => Self::Paired(serde_json::from_value(params)?),
            methods::ROOM_KEY => Self::RoomKey(serde_json::from_value(params)?),
            methods::PAIRING => Self::Pairing(serde_json::from_value(params)?),
            "" => return Err(serde_json::Error::custom("empty method")),
            other => Self::Other { method: other.to_owned(), params },
        })
    }

    /// The JSON-RPC method, e.g. `"webrtc:message"` (also the Tauri event name).
    pub fn method(&self) -> &str {
        match self {
            Self::Connected(_) => methods::CONNECTED,
            Self::Disconnected(_) => methods::DISCONNECTED,
            Self::Message(_) => methods::MESSAGE,
            Self::LeaderChanged(_) => methods::LEADER_CHANGED,
            Self::PeerListChanged(_) => methods::PEER_LIST_CHANGED,
            Self::NetworkChanged(_) => methods::NETWORK_CHANGED,
            Self::State(_) => methods::STATE,
            Self::Paired(_) => methods::PAIRED,
            Self::RoomKey(_) => methods::ROOM_KEY,
            Self::Pairing(_) => methods::PAIRING,
            Self::Other { method, .. } => method,
        }
    }

    /// The params as JSON, exactly as the sidecar sent them (modulo unknown fields).
    pub fn params_json(&self) -> Value {
        let r = match self {
            Self::Connected(p) => serde_json::to_value(p),
            Self::Disconnected(p) => serde_json::to_value(p),
            Self::Message(p) => serde_json::to_value(p),
            Self::LeaderChanged(p) => serde_json::to_value(p),
            Self::PeerListChanged(p) => serde_json::to_value(p),
            Self::NetworkChanged(p) => serde_json::to_value(p),
            Self::State(p) => serde_json::to_value(p),
            Self::Paired(p) => serde_json::to_value(p),
            Self::RoomKey(p) => serde_json::to_value(p),
            Self::Pairing(p) => serde_json::to_value(p),
            Self::Other { params, .. } => Ok(params.clone()),
        };
        r.unwrap_or(Value::Null)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn peer_json() -> Value {
        json!({"peer_id": "6f1c", "name": "Stage left", "peer_type": "display",
               "display_class": "stage", "started_at": 1764110000123u64, "is_leader": false,
               "connection_state": "connected", "relayed": false, "via": "direct"})
    }

    #[test]
    fn peer_info_round_trips_api_md_example() {
        let p: PeerInfo = serde_json::from_value(peer_json()).unwrap();
        assert_eq!(p.display_class, Some(DisplayClass::Stage));
        assert_eq!(p.connection_state, ConnectionState::Connected);
        assert_eq!(serde_json::to_value(&p).unwrap(), peer_json());
    }

    #[test]
    fn unknown_fields_and_values_are_tolerated() {
        let mut v = peer_json();
        v["connection_state"] = json!("warping");
        v["future_field"] = json!(1);
        let p: PeerInfo = serde_json::from_value(v).unwrap();
        assert_eq!(p.connection_state, ConnectionState::Unknown);
        let s: ConnectionState = serde_json::from_value(json!("self")).unwrap();
        assert_eq!(s, ConnectionState::SelfPeer);
    }

    #[test]
    fn leader_status_idle() {
        let v = json!({"state":"idle","leader_id":null,"is_leader":false,"term":0,"leader":null,
                       "signaling_url":null,"addresses":[],"keyed":false,"found_by":[],
                       "room_addresses":[],"rendezvous":[],"pairing":null,"display_url":null});
        let s: LeaderStatus = serde_json::from_value(v.clone()).unwrap();
        assert_eq!(s.state, LeaderState::Idle);
        assert_eq!(serde_json::to_value(&s).unwrap(), v);
        let offline: LeaderStatus =
            serde_json::from_value(json!({"state":"offline","leader_id":null,"is_leader":false,
                                          "term":3,"leader":null,"signaling_url":null}))
            .unwrap();
        assert_eq!((offline.state, offline.addresses.len()), (LeaderState::Offline, 0));
    }

    #[test]
    fn start_peer_params_skip_none() {
        let p = StartPeerParams::controller("Booth");
        assert_eq!(serde_json::to_value(&p).unwrap(), json!({"name":"Booth","peer_type":"controller"}));
        let p = StartPeerParams {
            signaling_port: Some(0),
            interfaces: Some(vec![Ipv4Addr::new(10, 78, 0, 2)]),
            ice_servers: Some(vec![IceServer { urls: "stun:x".into(), username: None, credential: None }]),
            ..StartPeerParams::display("Lobby", DisplayClass::Lobby)
        };
        assert_eq!(
            serde_json::to_value(&p).unwrap(),
            json!({"name":"Lobby","peer_type":"display","display_class":"lobby","signaling_port":0,
                   "interfaces":["10.78.0.2"],"ice_servers":[{"urls":"stun:x"}]})
        );
    }

    #[test]
    fn send_params() {
        let p = SendControlMessageParams::to("b", json!({"slide": 3}));
        assert_eq!(serde_json::to_value(&p).unwrap(), json!({"payload":{"slide":3},"to":"b"}));
        let p = SendControlMessageParams {
            to: Some(OneOrMany::Many(vec!["a".into()])),
            ..SendControlMessageParams::broadcast(json!(null))
        };
        assert_eq!(serde_json::to_value(&p).unwrap(), json!({"payload":null,"to":["a"]}));
    }

    #[test]
    fn notifications_by_method() {
        let n = Notification::from_parts(
            "webrtc:message",
            json!({"from":"a","message_id":"m","payload":[1],"sent_at":5}),
        )
        .unwrap();
        assert!(matches!(&n, Notification::Message(m) if m.payload == json!([1])));
        assert_eq!(n.method(), "webrtc:message");
        assert_eq!(
            serde_json::to_value(&n).unwrap(),
            json!({"method":"webrtc:message","params":{"from":"a","message_id":"m","payload":[1],"sent_at":5}})
        );
        let n = Notification::from_parts("webrtc:disconnected", json!({"peer_id":"a","reason":"timeout"}))
            .unwrap();
        assert_eq!(
            n,
            Notification::Disconnected(DisconnectedParams {
                peer_id: "a".into(),
                reason: DisconnectReason::Timeout,
                unacknowledged: vec![],
            })
        );
        let n = Notification::from_parts(
            "webrtc:leader_changed",
            json!({"leader_id":null,"is_leader":false,"term":2}),
        )
        .unwrap();
        assert_eq!(n.params_json(), json!({"leader_id":null,"is_leader":false,"term":2}));
        let n = Notification::from_parts("webrtc:connected", json!({"peer": peer_json()})).unwrap();
        assert!(matches!(n, Notification::Connected(_)));
        let n =
            Notification::from_parts("webrtc:peer_list_changed", json!({"peers": [peer_json()]})).unwrap();
        assert!(matches!(n, Notification::PeerListChanged(p) if p.peers.len() == 1));
        let n = Notification::from_parts(
            "webrtc:network_changed",
            json!({"addresses": ["10.0.0.7"], "online": true}),
        )
        .unwrap();
        assert!(matches!(&n, Notification::NetworkChanged(p) if p.online && p.addresses.len() == 1));
        assert_eq!(n.params_json(), json!({"addresses": ["10.0.0.7"], "online": true}));
        let n = Notification::from_parts("x:new", json!({"a":1})).unwrap();
        assert_eq!(n, Notification::Other { method: "x:new".into(), params: json!({"a":1}) });
        assert!(Notification::from_parts("webrtc:message", json!({"from": 1})).is_err());
    }
}
