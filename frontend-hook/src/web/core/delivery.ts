/**
 * Delivery on a channel whose transport can be replaced, sans I/O
 * (sidecar/core/delivery.py): the sender keeps what the receiver has not
 * acknowledged, and after each new transport's `sync` sends it again in order.
 */
import { AckClock, SendWindow } from "./flow";

export interface Sent {
  readonly messageId: string;
  readonly text: string;
  readonly cost: number;
}

export class Outbox {
  readonly sendWindow = new SendWindow();
  private readonly unackedList: Sent[] = [];
  /** A transport is open but the other side's `sync` has not come yet. */
  paused = true;

  canSend(cost: number): boolean {
    return !this.paused && this.sendWindow.hasRoom(cost);
  }

  onSent(message: Sent, now: number): void {
    this.sendWindow.onSent(message.cost, now);
    this.unackedList.push(message);
  }

  onAck(count: number, now: number): void {
    const before = this.sendWindow.acked;
    this.sendWindow.onAck(count, now);
    this.unackedList.splice(0, count - before);
  }

  newTransport(): void {
    this.paused = true;
  }

  /** What to send again, in order, before anything else; throws when `count` does not continue this channel. */
  onSync(count: number, now: number): Sent[] {
    this.onAck(count, now);
    this.paused = false;
    return [...this.unackedList];
  }

  unacked(): Sent[] {
    return [...this.unackedList];
  }
}

export class Inbox {
  readonly clock = new AckClock();

  onMessage(cost: number): boolean {
    return this.clock.onMessage(cost);
  }

  takeAck(): number | null {
    return this.clock.take();
  }

  /** The count for a new transport's `sync`; it acknowledges everything. */
  sync(): number {
    this.clock.pending = 0;
    return this.clock.received;
  }
}
