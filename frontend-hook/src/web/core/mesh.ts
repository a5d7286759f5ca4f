/**
 * Which pairs of peers keep a data channel, who offers, and how fast a lost
 * channel is tried again (sidecar/core/mesh.py; tests/vectors/mesh/).
 */
import type { MeshPolicy, SignalPeer } from "../../generated/sidecar-types";

type Pair = Pick<SignalPeer, "peer_id" | "peer_type">;

/** Whether the pair (a, b) keeps a data channel under `mesh`: with `controllers`,
 * a pair with a controller or with the leader (a display leads when no controller
 * runs, and it holds the room's retained state for screens that join meanwhile). */
export function wants(mesh: MeshPolicy, a: Pair, b: Pair, leaderId: string | null = null): boolean {
  if (mesh === "full" || a.peer_type === "controller" || b.peer_type === "controller") return true;
  return leaderId !== null && (a.peer_id === leaderId || b.peer_id === leaderId);
}

/** The channels to close when the room is listed under `leaderId`: those the mesh
 * keeps no more (two displays paired while one of them led, once a controller leads
 * again). None without a confirmed leader: a list made meanwhile may be partial. */
export function unwanted(mesh: MeshPolicy, me: Pair, linked: readonly Pair[], leaderId: string | null): string[] {
  if (leaderId === null) return [];
  return linked.filter((p) => !wants(mesh, me, p, leaderId)).map((p) => p.peer_id);
}

/** The lower peer id of a pair makes the offer: no glare. */
export function isOfferer(myId: string, theirId: string): boolean {
  return myId < theirId;
}

/** Delay before renegotiation attempt `attempt` (1-based): 250 ms doubling, 5 s cap. */
export function backoffMs(attempt: number): number {
  return Math.min(250 * 2 ** Math.max(attempt - 1, 0), 5000);
}

export const MAX_LINKS = 64;
export const OFFER_BURST = 6;
export const OFFER_REFILL_MS = 5000;

/** How many new transports a peer may offer us: OFFER_BURST at once, one per
 * OFFER_REFILL_MS after that (a token bucket per peer, bounded in memory). */
export class OfferBudget {
  private readonly tokens = new Map<string, [number, number]>();

  take(peerId: string, nowMs: number): boolean {
    const [held, at] = this.tokens.get(peerId) ?? [OFFER_BURST, nowMs];
    const tokens = Math.min(OFFER_BURST, held + (nowMs - at) / OFFER_REFILL_MS);
    if (tokens < 1) {
      this.tokens.set(peerId, [tokens, nowMs]);
      return false;
    }
    this.tokens.delete(peerId); // re-inserted last: the longest-quiet go first
    this.tokens.set(peerId, [tokens - 1, nowMs]);
    if (this.tokens.size > 4 * MAX_LINKS) {
      const oldest = this.tokens.keys().next().value;
      if (oldest !== undefined) this.tokens.delete(oldest);
    }
    return true;
  }
}
