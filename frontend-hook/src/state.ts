/**
 * The hook's state as a pure reducer, fed with the sidecar's events and the
 * results of its commands.
 *
 * Events and command results travel separately (Tauri events vs. command
 * responses), so a result may describe the room as it was *before* an event
 * that has already arrived. Every input carries a logical clock: events and
 * lifecycle changes tick it; a read (`get_leader_status`,
 * `get_connected_peers`) records the clock when it was issued and, when it
 * returns, updates only what nothing has changed since. No event is lost to a
 * slower, older result.
 */
import type { WebRTCCommandError } from "./errors";
import type {
  ConnectedParams,
  DisconnectedParams,
  LeaderChangedParams,
  LeaderState,
  LeaderStatus,
  MessageParams,
  NetworkChangedParams,
  PairingParams,
  PairingWindow,
  PeerInfo,
  PeerListChangedParams,
  StateEntry,
} from "./generated/sidecar-types";
import { applyStateEvent, initialRetained, mergeStateSnapshot, type RetainedState } from "./retained";

/** How a peer heard of its leader: `"mdns"` or `"rendezvous"`. */
export type FoundBy = NonNullable<LeaderStatus["found_by"]>[number];

/** What this device is doing, at a glance. */
export type PeerConnectionState =
  | "idle"
  | "starting"
  | "offline"
  | "discovering"
  | "electing"
  | "leader"
  | "follower"
  | "error";

/** The leader as this device knows it (LeaderStatus, camelCased). */
export interface LeaderView {
  /** The sidecar's election state. */
  state: LeaderState;
  leaderId: string | null;
  /** Whether this device leads. */
  isLeader: boolean;
  /** Grows by one at every change of leader. */
  term: number;
  /** The leader's PeerInfo, when known (from the room or get_leader_status). */
  leader: PeerInfo | null;
  /** WebSocket URL of the leader's signaling server, when known. */
  signalingUrl: string | null;
  /** Whether the room has a key (members only); null until get_leader_status said. */
  keyed: boolean | null;
  /** How this device heard of the leader it follows (mDNS, rendezvous), per get_leader_status. */
  foundBy: readonly FoundBy[];
  /** This device's open pairing window (its code, for a new device to type), if any. */
  pairing: PairingWindow | null;
  /** The display page this device serves, for a phone or a TV to open (get_leader_status). */
  displayUrl: string | null;
}

type Phase = "idle" | "starting" | "started" | "error";

/** The local addresses the peer uses; `online` false: waiting for a network. */
export interface NetworkView {
  addresses: readonly string[];
  online: boolean;
}

/** The peer layer's process was restarted (its sidecar died and the plugin started it again). */
export interface RestartView {
  /** Restarts since the app started. */
  count: number;
  /** When this device noticed, in milliseconds since the epoch. */
  at: number;
}

interface Clocks {
  phase: number;
  leader: number;
  room: number;
  peers: Readonly<Record<string, number>>;
}

export interface RoomState {
  phase: Phase;
  self: PeerInfo | null;
  /** Every peer of the room this device knows of, itself included, in the sidecar's order. */
  peers: readonly PeerInfo[];
  leader: Omit<LeaderView, "leader"> & { leader: PeerInfo | null };
  messages: readonly MessageParams[];
  error: WebRTCCommandError | null;
  /** Null until the sidecar said (network_changed, or get_leader_status). */
  network: NetworkView | null;
  /** The room's retained state (src/retained.ts). */
  retained: RetainedState;
  /** The last restart of the peer layer, if any. */
  restart: RestartView | null;
  clocks: Clocks;
}

export type RoomAction =
  | { type: "peer_list_changed"; at: number; params: PeerListChangedParams }
  | { type: "connected"; at: number; params: ConnectedParams }
  | { type: "disconnected"; at: number; params: DisconnectedParams }
  | { type: "leader_changed"; at: number; params: LeaderChangedParams }
  | { type: "network_changed"; at: number; params: NetworkChangedParams }
  | { type: "pairing"; at: number; params: PairingParams }
  | { type: "message"; params: MessageParams; max: number }
  | { type: "state"; at: number; params: StateEntry }
  | { type: "state_snapshot"; issued: number; entries: readonly StateEntry[] }
  | { type: "start_begin"; at: number }
  | { type: "start_ok"; at: number; self: PeerInfo }
  | { type: "start_failed"; at: number; error: WebRTCCommandError; running: boolean }
  | { type: "stop_ok"; at: number }
  | { type: "sidecar_restarted"; at: number; count: number; when: number }
  | { type: "rejoined"; at: number; self: PeerInfo | null; error: WebRTCCommandError | null }
  | { type: "leader_status"; issued: number; status: LeaderStatus }
  | { type: "connected_peers"; issued: number; peers: readonly PeerInfo[] }
  | { type: "error"; error: WebRTCCommandError }
  | { type: "clear_error" }
  | { type: "trim_messages"; max: number };

const IDLE_LEADER: RoomState["leader"] = {
  state: "idle",
  leaderId: null,
  isLeader: false,
  term: 0,
  leader: null,
  signalingUrl: null,
  keyed: null,
  foundBy: [],
  pairing: null,
  displayUrl: null,
};

export const initialRoomState: RoomState = {
  phase: "idle",
  self: null,
  peers: [],
  leader: IDLE_LEADER,
  messages: [],
  error: null,
  network: null,
  retained: initialRetained,
  restart: null,
  clocks: { phase: 0, leader: 0, room: 0, peers: {} },
};

function withLeaderFlags(peers: readonly PeerInfo[], leaderId: string | null): PeerInfo[] {
  return peers.map((p) => {
    const isLeader = leaderId !== null && p.peer_id === leaderId;
    return p.is_leader === isLeader ? p : { ...p, is_leader: isLeader };
  });
}

function upsert(peers: readonly PeerInfo[], peer: PeerInfo): PeerInfo[] {
  const i = peers.findIndex((p) => p.peer_id === peer.peer_id);
  if (i === -1) return [...peers, peer];
  const next = peers.slice();
  next[i] = peer;
  return next;
}

function stamp(clocks: Clocks, ids: readonly string[], at: number): Clocks["peers"] {
  const next = { ...clocks.peers };
  for (const id of ids) next[id] = at;
  return next;
}

function selfFrom(state: RoomState, peers: readonly PeerInfo[]): PeerInfo | null {
  // the room's own word: the sidecar lists this device as `self`
  const own = peers.find((p) => p.connection_state === "self");
  if (own !== undefined && state.phase !== "idle") return own;
  if (state.self === null) return null;
  const id = state.self.peer_id;
  return peers.find((p) => p.peer_id === id) ?? state.self;
}

/** A running peer is proven by any event: the phase follows, unless a start is in flight. */
function phaseOnEvent(state: RoomState): Phase {
  return state.phase === "starting" ? "starting" : "started";
}

export function roomReducer(state: RoomState, action: RoomAction): RoomState {
  switch (action.type) {
    case "peer_list_changed": {
      const peers = action.params.peers.slice();
      return {
        ...state,
        phase: phaseOnEvent(state),
        peers,
        self: selfFrom(state, peers),
        clocks: {
          ...state.clocks,
          room: action.at,
          peers: stamp(
            state.clocks,
            peers.map((p) => p.peer_id),
            action.at,
          ),
        },
      };
    }

    case "connected": {
      const peer: PeerInfo = {
        ...action.params.peer,
        connection_state: "connected",
      };
      const peers = upsert(state.peers, peer);
      return {
        ...state,
        phase: phaseOnEvent(state),
        peers,
        clocks: {
          ...state.clocks,
          peers: stamp(state.clocks, [peer.peer_id], action.at),
        },
      };
    }

    case "disconnected": {
      const id = action.params.peer_id;
      const peers = state.peers.map((p) =>
        p.peer_id === id ? { ...p, connection_state: "disconnected" as const } : p,
      );
      return {
        ...state,
        peers,
        clocks: { ...state.clocks, peers: stamp(state.clocks, [id], action.at) },
      };
    }

    case "leader_changed": {
      const { leader_id: leaderId, is_leader: isLeader, term } = action.params;
      const prev = state.leader;
      const electionState: LeaderState = isLeader
        ? "leader"
        : leaderId !== null
          ? "follower"
          : prev.state === "discovering" || prev.state === "electing" || prev.state === "offline"
            ? prev.state
            : "electing";
      const peers = withLeaderFlags(state.peers, leaderId);
      return {
        ...state,
        phase: phaseOnEvent(state),
        peers,
        self: selfFrom(state, peers),
        leader: {
          state: electionState,
          leaderId,
          isLeader,
          term,
          leader: prev.leader !== null && prev.leader.peer_id === leaderId ? prev.leader : null,
          signalingUrl: prev.leaderId === leaderId ? prev.signalingUrl : null,
          keyed: prev.keyed,
          foundBy: prev.leaderId === leaderId ? prev.foundBy : [],
          pairing: prev.pairing,
          displayUrl: prev.displayUrl,
        },
        clocks: { ...state.clocks, leader: action.at },
      };
    }

    case "network_changed": {
      const { addresses, online } = action.params;
      const prev = state.leader;
      // Offline overrides the election's state; back online, the election carries on from
      // where it was (get_leader_status, read on this event, says exactly where).
      const electionState: LeaderState = !online
        ? "offline"
        : prev.state === "offline"
          ? prev.isLeader
            ? "leader"
            : prev.leaderId !== null
              ? "follower"
              : "discovering"
          : prev.state;
      return {
        ...state,
        phase: phaseOnEvent(state),
        network: { addresses: addresses.slice(), online },
        leader: electionState === prev.state ? prev : { ...prev, state: electionState },
        clocks: { ...state.clocks, leader: action.at },
      };
    }

    case "pairing":
      return { ...state, leader: { ...state.leader, pairing: action.params.window ?? null } };

    case "message": {
      const max = Math.max(0, Math.floor(action.max));
      const messages = [...state.messages, action.params];
      return {
        ...state,
        messages: messages.length > max ? messages.slice(messages.length - max) : messages,
      };
    }

    case "state":
      return { ...state, retained: applyStateEvent(state.retained, action.params, action.at) };

    case "state_snapshot":
      // read before a stop or a start: it describes another run
      if (state.clocks.phase > action.issued) return state;
      return { ...state, retained: mergeStateSnapshot(state.retained, action.entries, action.issued) };

    case "trim_messages": {
      const max = Math.max(0, Math.floor(action.max));
      if (state.messages.length <= max) return state;
      return { ...state, messages: state.messages.slice(state.messages.length - max) };
    }

    case "start_begin":
      return { ...state, phase: "starting", clocks: { ...state.clocks, phase: action.at } };

    case "sidecar_restarted":
      // A new process with a new peer id: nothing of the old one's room holds. The plugin
      // rejoins with the last start_peer params (then "rejoined"). Received messages and
      // the retained state stay: the new process is sent the room's state again.
      return {
        ...initialRoomState,
        phase: state.phase === "idle" ? "idle" : "starting",
        leader: state.phase === "idle" ? IDLE_LEADER : { ...IDLE_LEADER, state: "discovering" },
        messages: state.messages,
        error: state.error,
        retained: state.retained,
        restart: { count: action.count, at: action.when },
        clocks: { phase: action.at, leader: action.at, room: action.at, peers: {} },
      };

    case "rejoined":
      if (action.self !== null) return roomReducer(state, { type: "start_ok", at: action.at, self: action.self });
      if (action.error !== null)
        return roomReducer(state, { type: "start_failed", at: action.at, error: action.error, running: false });
      // nothing to rejoin: the app had not started the peer (or stopped it)
      return { ...state, phase: "idle", leader: IDLE_LEADER, clocks: { ...state.clocks, phase: action.at } };

    case "start_ok": {
      const known = state.peers.find((p) => p.peer_id === action.self.peer_id);
      // the room's own entry for this device, if an event brought one, is as new or newer
      const peers = known ? state.peers : [...state.peers, action.self];
      const self = known ?? action.self;
      const leader =
        state.leader.state === "idle" ? { ...state.leader, state: "discovering" as const } : state.leader;
      return {
        ...state,
        phase: "started",
        self,
        peers,
        leader,
        clocks: {
          ...state.clocks,
          phase: action.at,
          peers: stamp(state.clocks, [action.self.peer_id], action.at),
        },
      };
    }

    case "start_failed":
      return {
        ...state,
        phase: action.running ? "started" : "error",
        error: action.error,
        clocks: { ...state.clocks, phase: action.at },
      };

    case "stop_ok":
      return {
        ...initialRoomState,
        messages: state.messages,
        error: state.error,
        network: null,
        restart: state.restart,
        clocks: { phase: action.at, leader: action.at, room: action.at, peers: {} },
      };

    case "leader_status":
      return mergeLeaderStatus(state, action.status, action.issued);

    case "connected_peers":
      return mergeConnectedPeers(state, action.peers, action.issued);

    case "error":
      return { ...state, error: action.error };

    case "clear_error":
      return state.error === null ? state : { ...state, error: null };
  }
}

function mergeLeaderStatus(state: RoomState, status: LeaderStatus, issued: number): RoomState {
  const phaseFresh = state.clocks.phase <= issued;
  let phase = state.phase;
  if (phaseFresh && state.phase !== "starting") {
    if (status.state !== "idle") phase = "started";
    else if (state.phase === "started") phase = "idle";
  }

  const prev = state.leader;
  // Terms only grow while the peer runs: a running peer's status with a lower term than
  // one already seen is older news, however it was ordered. Otherwise the read counts if
  // nothing changed the leader since it was issued, or if it saw a later term of the same
  // run (a stop or start since the read makes its terms meaningless).
  const lagging = status.state !== "idle" && state.phase !== "idle" && status.term < prev.term;
  const fresh =
    !lagging && (state.clocks.leader <= issued || (phaseFresh && status.term > prev.term));
  if (fresh) {
    const leaderChanged = status.leader_id !== prev.leaderId;
    const peers = leaderChanged ? withLeaderFlags(state.peers, status.leader_id) : state.peers;
    return {
      ...state,
      phase,
      peers,
      self: selfFrom(state, peers),
      leader: {
        state: status.state,
        leaderId: status.leader_id,
        isLeader: status.is_leader,
        term: status.term,
        leader: status.leader,
        signalingUrl: status.signaling_url,
        keyed: status.state === "idle" ? null : (status.keyed ?? false),
        foundBy: (status.found_by ?? []).slice(),
        pairing: status.pairing ?? null,
        displayUrl: status.display_url ?? null,
      },
      network:
        status.state === "idle"
          ? null
          : { addresses: (status.addresses ?? []).slice(), online: status.state !== "offline" },
      clocks: { ...state.clocks, leader: Math.max(state.clocks.leader, issued) },
    };
  }
  // A newer event set the leader: keep it, but take what only the read knows when it
  // describes the same leader in the same term.
  if (status.leader_id === prev.leaderId && status.term === prev.term) {
    return {
      ...state,
      phase,
      leader: {
        ...prev,
        leader: prev.leader ?? status.leader,
        signalingUrl: prev.signalingUrl ?? status.signaling_url,
        keyed: status.state === "idle" ? prev.keyed : (status.keyed ?? false),
        foundBy: (status.found_by ?? []).slice(),
        pairing: status.pairing ?? null,
        displayUrl: status.display_url ?? prev.displayUrl,
      },
    };
  }
  // Whether this device's room is keyed is its own fact, whoever leads: any read of a
  // running peer tells it (a read older than a leader event is otherwise dropped).
  if (status.state !== "idle" && state.phase !== "idle" && prev.keyed === null) {
    return { ...state, phase, leader: { ...prev, keyed: status.keyed ?? false } };
  }
  return phase === state.phase ? state : { ...state, phase };
}

function mergeConnectedPeers(
  state: RoomState,
  connected: readonly PeerInfo[],
  issued: number,
): RoomState {
  const peerFresh = (id: string) => (state.clocks.peers[id] ?? 0) <= issued;
  const roomFresh = state.clocks.room <= issued;
  const connectedIds = new Set(connected.map((p) => p.peer_id));
  let peers = state.peers.map((p) =>
    // connected before, absent from the read, and no event about it since
    p.connection_state === "connected" && !connectedIds.has(p.peer_id) && peerFresh(p.peer_id)
      ? { ...p, connection_state: "disconnected" as const }
      : p,
  );
  const stamped: string[] = [];
  for (const p of connected) {
    if (!peerFresh(p.peer_id)) continue;
    const known = peers.some((q) => q.peer_id === p.peer_id);
    // a newer peer list that lacks it has the last word on membership
    if (!known && !roomFresh) continue;
    peers = upsert(peers, { ...p, connection_state: "connected" });
    stamped.push(p.peer_id);
  }
  if (state.leader.leaderId !== null) peers = withLeaderFlags(peers, state.leader.leaderId);
  return {
    ...state,
    peers,
    self: selfFrom(state, peers),
    clocks: { ...state.clocks, peers: stamp(state.clocks, stamped, issued) },
  };
}
