/**
 * What the hook shows, derived from the reducer's state (src/state.ts).
 */
import type { PeerInfo } from "./generated/sidecar-types";
import type { LeaderView, PeerConnectionState, RoomState } from "./state";

export function selectConnectionState(state: RoomState): PeerConnectionState {
  const election = state.leader.state;
  switch (state.phase) {
    case "idle":
      return "idle";
    case "error":
      return "error";
    case "starting":
      return election === "leader" || election === "follower" ? election : "starting";
    case "started":
      return election === "idle" ? "discovering" : election;
  }
}

export function selectLeader(state: RoomState): LeaderView {
  const { leaderId } = state.leader;
  const fromRoom = leaderId === null ? undefined : state.peers.find((p) => p.peer_id === leaderId);
  const fromStatus =
    state.leader.leader !== null && state.leader.leader.peer_id === leaderId ? state.leader.leader : null;
  return { ...state.leader, leader: fromRoom ?? fromStatus };
}

export function selectConnectedPeers(peers: readonly PeerInfo[]): PeerInfo[] {
  return peers.filter((p) => p.connection_state === "connected");
}
