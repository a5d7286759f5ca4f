/**
 * A follower's registration at its leader, once joined, sans I/O: heartbeats,
 * when the leader counts as lost, which frames count (sidecar/core/follower.py,
 * where the reasons are; tests/vectors/follower/ decide both).
 */
import type { SignalMessage } from "../../generated/sidecar-types";

export const HEARTBEAT_INTERVAL_MS = 2000;
export const MISSED_LIMIT = 3;
const SUSPEND_MS = 2000;

export type LostReason = "silence" | "unsealed";
export type Delivered = Extract<SignalMessage, { type: "peer_list" | "offer" | "answer" | "candidate" | "relay" | "rekey" | "rekeyed" | "error" }>;

export type FollowerOutput =
  | { readonly kind: "beat"; readonly seq: number; readonly term: number }
  | { readonly kind: "deliver"; readonly frame: Delivered }
  | { readonly kind: "lost"; readonly reason: LostReason; readonly silentMs: number };

export class FollowerCore {
  term: number;
  lost = false;
  private readonly silence: number;
  private lastAck: number;
  private nextBeat: number;
  private seq = 0;
  private out: FollowerOutput[] = [];

  constructor(
    options: { term: number; now: number; keyed: boolean },
    private readonly interval = HEARTBEAT_INTERVAL_MS,
    missedLimit = MISSED_LIMIT,
  ) {
    this.term = options.term;
    this.keyed = options.keyed;
    this.silence = interval * missedLimit;
    this.lastAck = options.now;
    this.nextBeat = options.now + interval;
  }

  readonly keyed: boolean;

  take(): FollowerOutput[] {
    const out = this.out;
    this.out = [];
    return out;
  }

  nextDeadline(): number | null {
    return this.lost ? null : Math.min(this.nextBeat, this.lastAck + this.silence);
  }

  received(frame: SignalMessage, now: number): void {
    if (this.lost) return;
    switch (frame.type) {
      case "heartbeat_ack":
        this.lastAck = now;
        this.term = Math.max(this.term, frame.term);
        return;
      case "peer_list":
        if (frame.term < this.term) return; // stale
        this.term = frame.term;
        this.out.push({ kind: "deliver", frame });
        return;
      case "offer":
      case "answer":
      case "candidate":
      case "relay":
      case "error":
        this.out.push({ kind: "deliver", frame });
        return;
      case "rekey":
      case "rekeyed":
        if (this.keyed) this.out.push({ kind: "deliver", frame });
        return;
      default:
        return;
    }
  }

  unsealed(isError: boolean, now: number): void {
    if (!this.lost && !isError) this.lose("unsealed", now);
  }

  tick(now: number): void {
    const due = this.nextDeadline();
    if (due === null) return;
    if (now - due > SUSPEND_MS) {
      this.lastAck = now;
      this.nextBeat = now;
    }
    if (now >= this.lastAck + this.silence) {
      this.lose("silence", now);
      return;
    }
    if (now >= this.nextBeat) {
      this.seq += 1;
      this.nextBeat = Math.max(this.nextBeat + this.interval, now);
      this.out.push({ kind: "beat", seq: this.seq, term: this.term });
    }
  }

  private lose(reason: LostReason, now: number): void {
    this.lost = true;
    this.out.push({ kind: "lost", reason, silentMs: now - this.lastAck });
  }
}
