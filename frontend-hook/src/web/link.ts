/**
 * One `live-control` channel of a web peer to one other peer: the browser's
 * shell of the link core (./core/link.ts, the same rules as the sidecar's).
 *
 * The core decides; this shell carries out its actions with the browser's own
 * RTCPeerConnection (a negotiated data channel) or the leader's relay, feeds
 * it what they report with `performance.now()`, and wakes it at its deadline
 * with one timer. What the web peer should hear goes up through `LinkEvents`.
 */
import type { ControlEnvelope, DisconnectReason, Envelope, RelayShare, StateEnvelope } from "../generated/sidecar-types";
import type { Identity } from "./core/crypto";
import { LinkCore, RELAY_SDP, type LinkState, type Output, type SignalKind } from "./core/link";
import { RelaySeal } from "./core/relayseal";

export { RELAY_SDP } from "./core/link";
export const LABEL = "live-control";
const GATHER_TIMEOUT_MS = 3000;
/** After a bye, how long its transport stays open for it to leave. */
const BYE_FLUSH_MS = 50;

/** What a link reports to its owner, and what it asks of it. */
export interface LinkEvents {
  up(link: Link): void;
  down(link: Link, reason: DisconnectReason, unacked: string[]): void;
  envelope(link: Link, envelope: ControlEnvelope | StateEnvelope): void;
  /** Something held back may go now: the channel has room. */
  idle?(link: Link): void;
  /** An offer or answer to send through the leader (`relay`: a relay
   * transport's share); false: no route now. */
  signal(link: Link, kind: SignalKind, sdp: string, epoch: number, relay: RelayShare | null): boolean;
  /** A relay transport's sealed message through the leader; false: no route now. */
  relay(link: Link, epoch: number, seq: number, box: string): boolean;
  /** Whether the page is not taking what the peer gives it (acks then wait). */
  hostBusy?(): boolean;
}

interface Transport {
  send(text: string): void;
  close(): void;
}

/** The channel through the leader's signaling, sealed end to end (./core/relayseal.ts). */
class RelayTransport implements Transport {
  constructor(
    readonly seal: RelaySeal,
    private readonly forward: (seq: number, box: string) => boolean,
  ) {}
  send(text: string): void {
    if (!this.seal.ready) throw new Error("no relay to the peer now");
    const [seq, box] = this.seal.seal(text);
    if (!this.forward(seq, box)) throw new Error("no route through the leader now");
  }
  close(): void {
    // nothing to close: the leader's signaling carries on
  }
}

class DirectTransport implements Transport {
  readonly pc: RTCPeerConnection;
  private readonly channel: RTCDataChannel;
  private closed = false;

  constructor(
    iceServers: RTCIceServer[],
    handlers: {
      open(): void;
      message(text: string): void;
      binary(size: number): void;
      end(reason: "closed" | "failed"): void;
    },
  ) {
    this.pc = new RTCPeerConnection({ iceServers });
    this.channel = this.pc.createDataChannel(LABEL, { negotiated: true, id: 0, ordered: true });
    this.channel.onopen = () => {
      if (!this.closed) handlers.open();
    };
    this.channel.binaryType = "arraybuffer";
    this.channel.onmessage = (e: MessageEvent<unknown>) => {
      if (this.closed) return;
      if (typeof e.data === "string") handlers.message(e.data);
      else if (e.data instanceof ArrayBuffer) handlers.binary(e.data.byteLength);
    };
    this.channel.onclose = () => {
      if (!this.closed) handlers.end("closed");
    };
    this.pc.onconnectionstatechange = () => {
      if (this.pc.connectionState === "failed" && !this.closed) handlers.end("failed");
    };
  }

  async offer(): Promise<string> {
    await this.pc.setLocalDescription(await this.pc.createOffer());
    return this.gathered();
  }

  async answer(sdp: string): Promise<string> {
    await this.pc.setRemoteDescription({ type: "offer", sdp });
    await this.pc.setLocalDescription(await this.pc.createAnswer());
    return this.gathered();
  }

  async accept(sdp: string): Promise<void> {
    if (this.pc.signalingState === "have-local-offer") await this.pc.setRemoteDescription({ type: "answer", sdp });
  }

  /** The local SDP with every candidate in it (the room's protocol does not trickle). */
  private async gathered(): Promise<string> {
    if (this.pc.iceGatheringState !== "complete") {
      await new Promise<void>((resolve) => {
        const done = () => {
          if (this.pc.iceGatheringState === "complete") resolve();
        };
        this.pc.addEventListener("icegatheringstatechange", done);
        setTimeout(resolve, GATHER_TIMEOUT_MS);
      });
    }
    return this.pc.localDescription?.sdp ?? "";
  }

  send(text: string): void {
    if (this.closed || this.channel.readyState !== "open") throw new Error("channel not open");
    this.channel.send(text);
  }

  close(): void {
    this.closed = true;
    try {
      this.pc.close();
    } catch {
      // already gone
    }
  }
}

interface Waiting<T> {
  resolve(value: T): void;
  reject(error: Error): void;
}

export interface LinkSetup {
  me: string;
  peerId: string;
  linkId: string;
  offerer: boolean;
  /** A direct path can exist: both this browser and the other side have WebRTC. */
  direct: boolean;
  iceServers: RTCIceServer[];
  identity: Identity;
}

/** Whether this browser can open a direct path at all (TV browsers and kiosk
 * webviews often have no RTCPeerConnection: their channels go through the relay). */
export function hasWebRTC(): boolean {
  return typeof globalThis.RTCPeerConnection === "function";
}

export class Link {
  readonly core: LinkCore;
  private readonly transports = new Map<number, Transport>();
  private readonly queued = new Map<number, Waiting<undefined>>();
  private readonly pings = new Map<number, Waiting<number>>();
  private timer: ReturnType<typeof setTimeout> | null = null;
  private timerAt: number | null = null;
  private flushing = false;
  private closing = false;
  private readonly toClose: Transport[] = [];
  private readonly iceServers: RTCIceServer[];
  private readonly identity: Identity;
  /** (Answerer) the seal of a relay offer being answered, its share checked. */
  private offeredSeal: RelaySeal | null = null;

  constructor(
    setup: LinkSetup,
    private readonly events: LinkEvents,
  ) {
    this.iceServers = setup.iceServers;
    this.identity = setup.identity;
    // A web peer is in every pair a page has: without a direct path, the relay.
    this.core = new LinkCore({ ...setup, webPeer: true, now: performance.now() });
  }

  get peerId(): string {
    return this.core.peerId;
  }

  get linkId(): string {
    return this.core.linkId;
  }

  get state(): LinkState {
    return this.core.state;
  }

  get via(): "direct" | "relay" {
    return this.core.via;
  }

  unacked(): string[] {
    return this.core.unacked();
  }

  // ------------------------------------------------------------ negotiation

  offer(relay = false): void {
    this.core.offer(performance.now(), relay);
    this.flush();
  }

  onOffer(sdp: string, epoch: number, relay: RelayShare | null = null): void {
    if (sdp === RELAY_SDP) {
      const seal = this.sealOffered(epoch, relay);
      if (seal === null) return; // not the peer's share, or not for this transport
      this.offeredSeal = seal;
    }
    try {
      this.core.offerReceived(epoch, sdp, performance.now());
      this.flush();
    } finally {
      this.offeredSeal = null;
    }
  }

  onAnswer(sdp: string, epoch: number, relay: RelayShare | null = null): void {
    if (sdp === RELAY_SDP) {
      const t = this.transports.get(epoch);
      if (!(t instanceof RelayTransport) || relay === null || !t.seal.accept(relay)) return;
    }
    this.core.answerReceived(epoch, sdp, performance.now());
    this.flush();
  }

  onRelay(epoch: number, seq: number, box: string): void {
    const t = this.transports.get(epoch);
    const text = t instanceof RelayTransport ? t.seal.open(seq, box) : null;
    if (text === null) return;
    this.host();
    this.core.relayReceived(epoch, text, performance.now());
    this.flush();
  }

  /** A relay offer's seal: its own again (a resent offer), or a new one whose share checks out. */
  private sealOffered(epoch: number, relay: RelayShare | null): RelaySeal | null {
    if (relay === null) return null;
    const current = this.transports.get(epoch);
    if (current instanceof RelayTransport) return current.seal.accept(relay) ? current.seal : null;
    const seal = this.newSeal(epoch);
    return seal.accept(relay) ? seal : null;
  }

  private newSeal(epoch: number): RelaySeal {
    return new RelaySeal(this.identity, { peer: this.peerId, link: this.linkId, epoch, offerer: this.core.offerer });
  }

  /** There is a new signaling route: a pending offer goes again now. */
  routeChanged(): void {
    this.core.routeChanged(performance.now());
    this.flush();
  }

  // ---------------------------------------------------------------- sending

  /** Send a control or state envelope now, or in order once the window has room.
   * `withinMs`: give up (and withdraw it) if it has not gone by then. */
  send(envelope: Envelope, id = "", withinMs?: number): Promise<void> {
    let ticket: number | null;
    try {
      ticket = this.core.sendMessage(JSON.stringify(envelope), id, performance.now());
    } catch (err) {
      return Promise.reject(err instanceof Error ? err : new Error(String(err)));
    }
    let went: Promise<void> = Promise.resolve();
    if (ticket !== null) {
      const queued = ticket;
      went = new Promise<void>((resolve, reject) => {
        const timer =
          withinMs === undefined
            ? null
            : setTimeout(() => {
                this.core.cancel(queued);
                this.queued.delete(queued);
                reject(new Error("channel not taking messages"));
              }, withinMs);
        const settle = () => {
          if (timer !== null) clearTimeout(timer);
        };
        this.queued.set(queued, {
          resolve: () => {
            settle();
            resolve();
          },
          reject: (err) => {
            settle();
            reject(err);
          },
        });
      });
    }
    this.flush();
    return went;
  }

  /** Queued behind what waits (throws when not open); dropped if the channel closes first. */
  sendInOrder(envelope: StateEnvelope): void {
    if (!this.core.isOpen) throw new Error("channel not open");
    this.send(envelope).catch(() => undefined);
  }

  sendNow(envelope: StateEnvelope): boolean {
    const sent = this.core.sendNow(JSON.stringify(envelope), performance.now());
    this.flush();
    return sent;
  }

  /** Round trip in milliseconds over the channel. */
  ping(timeoutMs = 5000): Promise<number> {
    let seq: number;
    try {
      seq = this.core.ping(performance.now(), timeoutMs);
    } catch (err) {
      return Promise.reject(err instanceof Error ? err : new Error(String(err)));
    }
    const answer = new Promise<number>((resolve, reject) => {
      this.pings.set(seq, { resolve, reject });
    });
    this.flush();
    return answer;
  }

  /** The page takes what it is given again: the acks held back go. */
  hostDrained(): void {
    this.core.setHostBusy(false);
    this.flush();
  }

  close(sayBye: boolean): void {
    if (this.closing) return;
    this.closing = true;
    const bye = sayBye && this.core.isOpen;
    this.core.close(sayBye);
    this.flush();
    const closeAll = () => {
      for (const t of [...this.toClose, ...this.transports.values()]) t.close();
      this.toClose.length = 0;
      this.transports.clear();
    };
    if (bye) setTimeout(closeAll, BYE_FLUSH_MS);
    else closeAll();
  }

  // --------------------------------------------------------------- internals

  private host(): void {
    const busy = this.events.hostBusy?.() ?? false;
    if (busy !== this.core.hostBusy) this.core.setHostBusy(busy);
  }

  private flush(): void {
    if (this.flushing) return;
    this.flushing = true;
    try {
      for (let out = this.core.take(); out.length > 0; out = this.core.take()) {
        for (const o of out) {
          try {
            this.carryOut(o);
          } catch (err) {
            // a listener's bug must not cost the rest of the batch, nor the timer
            console.error(`mobile-worship: data channel to ${this.peerId}: ${o.kind} failed`, err);
          }
        }
      }
    } finally {
      this.flushing = false;
      this.arm();
    }
  }

  private carryOut(o: Output): void {
    switch (o.kind) {
      case "send": {
        const t = this.transports.get(o.epoch);
        try {
          if (t === undefined) throw new Error("no such transport");
          t.send(o.text);
        } catch {
          if (o.must) this.core.sendFailed(o.epoch, performance.now());
        }
        return;
      }
      case "message":
        this.events.envelope(this, o.envelope);
        return;
      case "went":
        this.queued.get(o.ticket)?.resolve(undefined);
        this.queued.delete(o.ticket);
        return;
      case "dropped":
        this.queued.get(o.ticket)?.reject(new Error("channel closed"));
        this.queued.delete(o.ticket);
        return;
      case "idle":
        this.events.idle?.(this);
        return;
      case "pong":
        this.pings.get(o.seq)?.resolve(o.rttMs);
        this.pings.delete(o.seq);
        return;
      case "no_pong":
        this.pings.get(o.seq)?.reject(new Error("no answer to a ping"));
        this.pings.delete(o.seq);
        return;
      case "signal": {
        const t = this.transports.get(o.epoch);
        const relay = o.sdp === RELAY_SDP && t instanceof RelayTransport ? t.seal.mine() : null;
        this.events.signal(this, o.signal, o.sdp, o.epoch, relay);
        return;
      }
      case "create_offer": {
        const t = this.direct(o.epoch);
        this.negotiate(o.epoch, t.offer());
        return;
      }
      case "create_answer": {
        const t = this.direct(o.epoch);
        this.negotiate(o.epoch, t.answer(o.sdp));
        return;
      }
      case "accept_answer": {
        const t = this.transports.get(o.epoch);
        if (t instanceof DirectTransport) this.negotiate(o.epoch, t.accept(o.sdp).then(() => null));
        return;
      }
      case "open_relay": {
        const offered = this.offeredSeal;
        const seal = offered !== null && offered.epoch === o.epoch ? offered : this.newSeal(o.epoch);
        this.transports.set(o.epoch, new RelayTransport(seal, (seq, box) => this.events.relay(this, o.epoch, seq, box)));
        return;
      }
      case "close": {
        const t = this.transports.get(o.epoch);
        this.transports.delete(o.epoch);
        if (t !== undefined) {
          if (this.closing) this.toClose.push(t);
          else t.close();
        }
        return;
      }
      case "up":
        this.events.up(this);
        return;
      case "down":
        this.events.down(this, o.reason, o.unacked);
        return;
    }
  }

  private direct(epoch: number): DirectTransport {
    const t: DirectTransport = new DirectTransport(this.iceServers, {
      open: () => {
        if (this.transports.get(epoch) === t) {
          this.core.transportOpen(epoch, performance.now());
          this.flush();
        }
      },
      message: (text) => {
        if (this.transports.get(epoch) === t) {
          this.host();
          this.core.transportMessage(epoch, text, performance.now());
          this.flush();
        }
      },
      binary: (size) => {
        if (this.transports.get(epoch) === t) {
          this.core.transportBinary(epoch, size, performance.now());
          this.flush();
        }
      },
      end: (reason) => {
        if (this.transports.get(epoch) === t) {
          this.core.transportClosed(epoch, reason, performance.now());
          this.flush();
        }
      },
    });
    this.transports.set(epoch, t);
    return t;
  }

  private negotiate(epoch: number, step: Promise<string | null>): void {
    step.then(
      (sdp) => {
        if (sdp !== null) this.core.localDescription(epoch, sdp, performance.now());
        this.flush();
      },
      () => {
        this.core.negotiationFailed(epoch, performance.now());
        this.flush();
      },
    );
  }

  private arm(): void {
    const deadline = this.core.nextDeadline();
    if (deadline === this.timerAt) return;
    if (this.timer !== null) clearTimeout(this.timer);
    this.timer = null;
    this.timerAt = deadline;
    if (deadline !== null && !this.closing) {
      this.timer = setTimeout(
        () => {
          this.timer = this.timerAt = null;
          this.host();
          this.core.tick(performance.now());
          this.flush();
        },
        Math.max(0, deadline - performance.now()),
      );
    }
  }
}
