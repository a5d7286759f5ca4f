/**
 * JavaScript bindings of tauri-plugin-mobile-worship.
 *
 * Commands take and return the types of the sidecar's stdio API (docs/api.md),
 * field names unchanged (snake_case).  Events carry the sidecar's notification params.
 * The payload types are those generated from the sidecar's schema
 * (./sidecar-types.ts, written by frontend-hook/scripts/gen-types.mjs beside the
 * hook's src/generated/sidecar-types.ts, the same text), re-exported here: the
 * plugin's .crate and this folder stand alone.
 */
import { invoke } from "@tauri-apps/api/core";
import { listen, type EventCallback, type UnlistenFn } from "@tauri-apps/api/event";

// One definition of every payload: the types generated from the sidecar's schema.
import type {
  ConnectedParams,
  DisconnectedParams,
  LeaderChangedParams,
  LeaderStatus,
  MessageParams,
  NetworkChangedParams,
  PeerInfo,
  PeerListChangedParams,
  PingResult,
  SendControlMessageParams,
  SendResult,
  StartPeerParams,
  StateEntry,
  OpenPairingParams,
  PairingWindow,
  PairedParams,
  RoomKeyParams,
  PairingParams,
  RotationResult,
} from "./sidecar-types.js";

export type {
  ConnectedParams,
  ConnectionState,
  DisconnectedParams,
  DisplayClass,
  IceServer,
  LeaderChangedParams,
  LeaderStatus,
  MessageParams,
  PeerInfo,
  PeerListChangedParams,
  PeerType,
  PingResult,
  SendControlMessageParams,
  SendResult,
  StartPeerParams,
  StateEntry,
  StateVersion,
  NetworkChangedParams,
  OpenPairingParams,
  PairingWindow,
  PairedParams,
  RoomKeyParams,
  PairingParams,
  RotationResult,
} from "./sidecar-types.js";

/** What a failed command rejects with. */
export interface MobileWorshipError {
  /** Stable: "not_started", "already_started", "peer_not_connected", "payload_too_large",
   * "invalid_params", "sidecar_exited", "timeout", "unavailable", ... */
  kind: string;
  /** The JSON-RPC error code, when the sidecar answered with an error. */
  code: number | null;
  message: string;
  /** For invalid_params: `{field, reason}`. */
  data: unknown;
}

/** The Tauri events of the plugin and their payloads. */
export interface MobileWorshipEvents {
  "webrtc:connected": ConnectedParams;
  "webrtc:disconnected": DisconnectedParams;
  "webrtc:message": MessageParams;
  "webrtc:leader_changed": LeaderChangedParams;
  "webrtc:peer_list_changed": PeerListChangedParams;
  "webrtc:network_changed": NetworkChangedParams;
  /** The room's value of a key changed (`value` null: cleared). */
  "webrtc:state": StateEntry;
  /** This device paired: store `room_key` for the next start. */
  "webrtc:paired": PairedParams;
  /** A room key to store: `created` here, or `rotated` by a member. */
  "webrtc:room_key": RoomKeyParams;
  /** This device's pairing window changed. */
  "webrtc:pairing": PairingParams;
  /** Lifecycle of the sidecar process. */
  "mobile-worship:sidecar":
    | { event: "started"; pid: number | null; restart: number }
    | { event: "exited"; exit: { code: number | null; signal: number | null; expected: boolean; stderr_tail: string[] } }
    | { event: "restarting"; attempt: number; delay_ms: number }
    | { event: "restart_failed"; attempt: number; error: string }
    | { event: "gave_up"; attempts: number };
}

const command = <T>(name: string, params?: object): Promise<T> =>
  invoke<T>(`plugin:mobile-worship|${name}`, params ? { params } : {});

/** Joins the room as this device; resolves to this peer. */
export const startPeer = (params: StartPeerParams): Promise<PeerInfo> => command("start_peer", params);

/** Sends a control message (at most 64 KiB serialized) to every connected peer, or `to`. */
export const sendControlMessage = (params: SendControlMessageParams): Promise<SendResult> =>
  command("send_control_message", params);

/** The peers with an open data channel. */
export const getConnectedPeers = (): Promise<PeerInfo[]> => command("get_connected_peers");

export const getLeaderStatus = (): Promise<LeaderStatus> => command("get_leader_status");

/** The room's retained state as this device holds it, by key. */
export const getState = (): Promise<StateEntry[]> => command("get_state");

/** Opens a pairing window of this keyed room: the code a new device starts with. */
export const openPairing = (params: OpenPairingParams = {}): Promise<PairingWindow> =>
  command("open_pairing", params);

export const closePairing = (): Promise<null> => command("close_pairing");

/** Gives every member present but `revoke` a new room key (`webrtc:room_key` on
 * each) and shuts the revoked devices out of the room. */
export const rotateRoomKey = (revoke: string[] = []): Promise<RotationResult> =>
  command("rotate_room_key", { revoke });

/** The room key an earlier run of this app kept for `room` (it keeps every key the
 * sidecar gives it: created, paired, rotated), or null: start with it as `room_key`. */
export const savedRoomKey = (room = "default"): Promise<string | null> => command("saved_room_key", { room });

/** Forget the room key kept for `room` (this device leaves the room for good). */
export const forgetRoomKey = (room = "default"): Promise<null> => command("forget_room_key", { room });

/** Round trip over the data channel to `peerId`. */
export const pingPeer = (peerId: string): Promise<PingResult> => command("ping_peer", { peer_id: peerId });

/** Leaves the room; the sidecar keeps running and `startPeer` may follow. */
export const stopPeer = (): Promise<null> => command("stop_peer");

/** Listens to one of the plugin's events. */
export function onEvent<E extends keyof MobileWorshipEvents>(
  event: E,
  handler: EventCallback<MobileWorshipEvents[E]>,
): Promise<UnlistenFn> {
  return listen<MobileWorshipEvents[E]>(event, handler);
}
