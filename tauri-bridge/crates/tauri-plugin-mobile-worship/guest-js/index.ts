/**
 * JavaScript bindings of tauri-plugin-mobile-worship.
 *
 * Commands take and return the types of the sidecar's stdio API (shared/spec/api.md),
 * field names unchanged (snake_case).  Events carry the sidecar's notification params.
 * The full generated types live in frontend-hook/ (src/generated/sidecar-types.ts); the
 * ones here are the subset these bindings need.
 */
import { invoke } from "@tauri-apps/api/core";
import { listen, type EventCallback, type UnlistenFn } from "@tauri-apps/api/event";

export type PeerType = "controller" | "display";
export type DisplayClass = "audience" | "stage" | "lobby";
export type ConnectionState = "new" | "connecting" | "connected" | "disconnected" | "self";

export interface PeerInfo {
  peer_id: string;
  name: string;
  peer_type: PeerType;
  display_class: DisplayClass | null;
  /** Milliseconds since the Unix epoch. */
  started_at: number;
  is_leader: boolean;
  connection_state: ConnectionState;
}

export interface IceServer {
  urls: string | string[];
  username?: string | null;
  credential?: string | null;
}

export interface StartPeerParams {
  name: string;
  peer_type: PeerType;
  display_class?: DisplayClass | null;
  signaling_port?: number;
  room?: string;
  room_key?: string | null;
  mesh?: "controllers" | "full";
  echo?: boolean;
  ice_servers?: IceServer[];
  interfaces?: string[] | null;
}

export interface SendControlMessageParams {
  payload: unknown;
  to?: string | string[] | null;
  display_class?: DisplayClass | null;
}

export interface SendResult {
  message_id: string;
  sent_to: string[];
}

export interface LeaderStatus {
  state: "idle" | "discovering" | "electing" | "leader" | "follower";
  leader_id: string | null;
  is_leader: boolean;
  term: number;
  leader: PeerInfo | null;
  signaling_url: string | null;
}

export interface PingResult {
  rtt_ms: number;
}

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
  "webrtc:connected": { peer: PeerInfo };
  "webrtc:disconnected": { peer_id: string; reason: "closed" | "timeout" | "failed" | "left" };
  "webrtc:message": { from: string; message_id: string; payload: unknown; sent_at: number };
  "webrtc:leader_changed": { leader_id: string | null; is_leader: boolean; term: number };
  "webrtc:peer_list_changed": { peers: PeerInfo[] };
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
