/**
 * Which pairs of peers keep a data channel, who offers, and how fast a lost
 * channel is tried again (sidecar/core/mesh.py; tests/vectors/mesh/).
 */
import type { MeshPolicy, SignalPeer } from "../../generated/sidecar-types";

/** Whether the pair (a, b) keeps a data channel under `mesh`. */
export function wants(mesh: MeshPolicy, a: Pick<SignalPeer, "peer_type">, b: Pick<SignalPeer, "peer_type">): boolean {
  return mesh === "full" || a.peer_type === "controller" || b.peer_type === "controller";
}

/** The lower peer id of a pair makes the offer: no glare. */
export function isOfferer(myId: string, theirId: string): boolean {
  return myId < theirId;
}

/** Delay before renegotiation attempt `attempt` (1-based): 250 ms doubling, 5 s cap. */
export function backoffMs(attempt: number): number {
  return Math.min(250 * 2 ** Math.max(attempt - 1, 0), 5000);
}
