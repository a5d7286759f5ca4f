/**
 * Flow control of a data channel, sans I/O (sidecar/core/flow.py): a window of
 * datagrams per direction. The reasons and figures are in the Python module.
 */

export const DATAGRAM_PAYLOAD_BYTES = 1160;
export const WINDOW_DATAGRAMS = 64;
export const ACK_EVERY_DATAGRAMS = 16;
export const ACK_DELAY_MS = 20;
export const ACK_STALL_MS = 6000;

/** Datagrams that a message of `size` bytes takes on the wire. */
export function datagrams(size: number): number {
  return Math.max(1, Math.ceil(size / DATAGRAM_PAYLOAD_BYTES));
}

/** The sender's side: which messages are unacknowledged, and what they cost. */
export class SendWindow {
  inFlight = 0;
  /** Messages sent through the window since the channel opened. */
  sent = 0;
  acked = 0;
  private readonly costs: number[] = [];
  private progressAt = 0;

  constructor(readonly limit = WINDOW_DATAGRAMS) {}

  /** An empty window takes any message, so one larger than the window still goes alone. */
  hasRoom(cost: number): boolean {
    return this.inFlight === 0 || this.inFlight + cost <= this.limit;
  }

  onSent(cost: number, now: number): void {
    if (this.inFlight === 0) this.progressAt = now;
    this.sent += 1;
    this.inFlight += cost;
    this.costs.push(cost);
  }

  stalledFor(now: number): number {
    return this.inFlight > 0 ? now - this.progressAt : 0;
  }

  stalledSince(): number | null {
    return this.inFlight > 0 ? this.progressAt : null;
  }

  suspended(slept: number): void {
    this.progressAt += slept;
  }

  /** The receiver has taken the first `count` messages; throws for a count outside what was sent. */
  onAck(count: number, now: number): void {
    if (!(this.acked <= count && count <= this.sent)) {
      throw new RangeError(`ack of ${count} messages, ${this.acked} to ${this.sent} expected`);
    }
    for (let n = this.acked; n < count; n++) this.inFlight -= this.costs.shift() ?? 0;
    this.acked = count;
    this.progressAt = now;
  }
}

/** The receiver's side: when to acknowledge, and what count to send. */
export class AckClock {
  received = 0;
  pending = 0;

  constructor(readonly every = ACK_EVERY_DATAGRAMS) {}

  onMessage(cost: number): boolean {
    this.received += 1;
    this.pending += cost;
    return this.pending >= this.every;
  }

  take(): number | null {
    if (this.pending === 0) return null;
    this.pending = 0;
    return this.received;
  }
}
