/**
 * One `live-control` channel of a web peer to one other peer: the sidecar's
 * rules (sidecar/net/link.py, sidecar/core/delivery.py, sidecar/core/flow.py) in the browser.
 *
 * A transport (the browser's RTCPeerConnection with its negotiated channel, or
 * the leader's signaling when no direct path opens) carries envelopes; on each
 * new transport both sides send `sync` first, and the sender sends again what
 * the other side has not taken. Control and state messages count in a send
 * window of 64 datagrams, acknowledged every 16 or 20 ms after the last; pings
 * every 2 s, three missed end the channel. A channel to a peer whose offers we
 * make goes through the leader (`relay`) when no direct path opened in 3 s.
 */
import type { Envelope } from "../generated/sidecar-types";

export const LABEL = "live-control";
export const RELAY_SDP = "relay";
export const DATAGRAM_PAYLOAD_BYTES = 1160;
export const WINDOW_DATAGRAMS = 64;
export const ACK_EVERY_DATAGRAMS = 16;
export const ACK_DELAY_MS = 20;
export const PING_INTERVAL_MS = 2000;
export const MISSED_PINGS = 3;
export const CONNECT_TIMEOUT_MS = 10_000;
export const RELAY_AFTER_MS = 3000;
/** While relayed, the offerer tries a direct path this often (the relay carries on meanwhile). */
export const UPGRADE_EVERY_MS = 10_000;
/** A direct path not open in this long is given up until the next try. */
export const UPGRADE_WINDOW_MS = 6000;
const GATHER_TIMEOUT_MS = 3000;

const utf8 = new TextEncoder();

export function datagrams(size: number): number {
  return Math.max(1, Math.ceil(size / DATAGRAM_PAYLOAD_BYTES));
}

export type LinkState = "connecting" | "connected" | "disconnected";
export type EndReason = "closed" | "timeout" | "failed" | "left";

/** What a link reports to its owner, and what it asks of it. */
export interface LinkEvents {
  up(link: Link): void;
  down(link: Link, reason: EndReason, unacked: string[]): void;
  envelope(link: Link, envelope: Envelope): void;
  /** An offer or answer to send through the leader; false: no route now. */
  signal(link: Link, kind: "offer" | "answer", sdp: string, epoch: number): boolean;
  /** A relay transport's message through the leader; false: no route now. */
  relay(link: Link, epoch: number, text: string): boolean;
}

interface Transport {
  readonly epoch: number;
  readonly relayed: boolean;
  opened: boolean;
  send(text: string): void;
  close(): void;
}

interface Sent {
  id: string;
  text: string;
  cost: number;
}

class RelayTransport implements Transport {
  readonly relayed = true;
  opened = false;
  constructor(
    readonly epoch: number,
    private readonly forward: (text: string) => boolean,
    private readonly onOpen: () => void,
  ) {}
  open(): void {
    if (!this.opened) {
      this.opened = true;
      this.onOpen();
    }
  }
  send(text: string): void {
    if (!this.opened || !this.forward(text)) throw new Error("relay not open");
  }
  close(): void {
    this.opened = false;
  }
}

class DirectTransport implements Transport {
  readonly relayed = false;
  opened = false;
  readonly pc: RTCPeerConnection;
  private readonly channel: RTCDataChannel;
  private closed = false;

  constructor(
    readonly epoch: number,
    iceServers: RTCIceServer[],
    handlers: { open(): void; message(text: string): void; end(reason: EndReason): void },
  ) {
    this.pc = new RTCPeerConnection({ iceServers });
    this.channel = this.pc.createDataChannel(LABEL, { negotiated: true, id: 0, ordered: true });
    this.channel.onopen = () => {
      if (!this.closed) {
        this.opened = true;
        handlers.open();
      }
    };
    this.channel.onmessage = (e: MessageEvent<unknown>) => {
      if (!this.closed && typeof e.data === "string") handlers.message(e.data);
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
    if (!this.opened || this.channel.readyState !== "open") throw new Error("channel not open");
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

export class Link {
  state: LinkState = "connecting";
  epoch = 0;
  openedAt: number | null = null;
  private transport: Transport | null = null;
  private retired: Transport[] = [];
  // delivery: what we sent and the other side has not acknowledged
  private unacked: Sent[] = [];
  private sent = 0;
  private acked = 0;
  private inFlight = 0;
  private costs: number[] = [];
  private backlog: { message: Sent; went: () => void; failed: (e: Error) => void }[] = [];
  private paused = true;
  // receiving
  private received = 0;
  private pendingAck = 0;
  private ackTimer: ReturnType<typeof setTimeout> | null = null;
  private syncedOut = false;
  private syncedIn = false;
  private lastHeard = Date.now();
  private pingSeq = 0;
  private readonly pings = new Map<number, { resolve(ms: number): void; at: number }>();
  private started = Date.now();
  private nextPing = Date.now() + PING_INTERVAL_MS;
  private readonly timer: ReturnType<typeof setInterval>;
  private ending = false;
  // a direct path tried while the relay carries the channel (make before break)
  private upgrade: DirectTransport | null = null;
  private upgradeUntil = 0;
  private nextUpgrade = Date.now() + UPGRADE_EVERY_MS;
  private triedEpoch = 0;

  constructor(
    readonly me: string,
    readonly peerId: string,
    readonly linkId: string,
    readonly offerer: boolean,
    private readonly iceServers: RTCIceServer[],
    private readonly events: LinkEvents,
  ) {
    this.timer = setInterval(() => {
      this.watch();
    }, 250);
  }

  get via(): "direct" | "relay" {
    return this.transport?.relayed ? "relay" : "direct";
  }

  // ------------------------------------------------------------ negotiation

  /** (Offerer) A new transport: direct, or through the leader. */
  offer(relay = false): void {
    this.dropUpgrade();
    const epoch = this.epoch + 1;
    const transport = this.replace(epoch, relay);
    if (transport instanceof RelayTransport) {
      this.events.signal(this, "offer", RELAY_SDP, epoch);
      return;
    }
    if (!(transport instanceof DirectTransport)) return;
    void transport.offer().then(
      (sdp) => {
        if (this.transport === transport) this.events.signal(this, "offer", sdp, epoch);
      },
      () => {
        this.fail("failed");
      },
    );
  }

  async onOffer(sdp: string, epoch: number): Promise<void> {
    if (epoch <= this.epoch || this.ending) return;
    if (this.relayedAndOpen() && sdp !== RELAY_SDP) {
      await this.answerUpgrade(sdp, epoch);
      return;
    }
    this.dropUpgrade();
    const transport = this.replace(epoch, sdp === RELAY_SDP);
    if (transport instanceof RelayTransport) {
      this.events.signal(this, "answer", RELAY_SDP, epoch);
      transport.open();
      return;
    }
    if (!(transport instanceof DirectTransport)) return;
    try {
      const answer = await transport.answer(sdp);
      if (this.transport === transport) this.events.signal(this, "answer", answer, epoch);
    } catch {
      if (this.transport === transport) this.fail("failed");
    }
  }

  async onAnswer(sdp: string, epoch: number): Promise<void> {
    const upgrade = this.upgrade;
    if (upgrade?.epoch === epoch) {
      try {
        await upgrade.accept(sdp);
      } catch {
        this.dropUpgrade(upgrade);
      }
      return;
    }
    const transport = this.transport;
    if (transport?.epoch !== epoch) return;
    if (transport instanceof RelayTransport) {
      transport.open();
      return;
    }
    if (!(transport instanceof DirectTransport)) return;
    try {
      await transport.accept(sdp);
    } catch {
      this.fail("failed");
    }
  }

  onRelay(epoch: number, data: string): void {
    const transport = this.transport;
    if (transport instanceof RelayTransport && transport.epoch === epoch) {
      transport.open();
      this.onMessage(transport, data);
    }
  }

  // ------------------------------------------------ from the relay to a direct path

  private relayedAndOpen(): boolean {
    return this.state === "connected" && (this.transport?.relayed ?? false) && this.syncedIn;
  }

  private directBeside(epoch: number): DirectTransport {
    const upgrade: DirectTransport = new DirectTransport(epoch, this.iceServers, {
      open: () => {
        if (upgrade === this.upgrade) this.promote(upgrade);
      },
      message: (text) => {
        if (upgrade === this.upgrade) this.promote(upgrade); // the other side's opened first
        this.onMessage(upgrade, text);
      },
      end: (reason) => {
        if (upgrade === this.upgrade) this.dropUpgrade(upgrade);
        else if (upgrade === this.transport) this.fail(reason);
      },
    });
    this.upgrade = upgrade;
    this.upgradeUntil = Date.now() + UPGRADE_WINDOW_MS;
    return upgrade;
  }

  /** (Offerer) Offer a direct transport beside the relay that carries the channel. */
  private tryUpgrade(now: number): void {
    this.nextUpgrade = now + UPGRADE_EVERY_MS;
    const epoch = (this.triedEpoch = Math.max(this.epoch, this.triedEpoch) + 1);
    const upgrade = this.directBeside(epoch);
    void upgrade.offer().then(
      (sdp) => {
        if (upgrade === this.upgrade) this.events.signal(this, "offer", sdp, epoch);
      },
      () => {
        this.dropUpgrade(upgrade);
      },
    );
  }

  /** (Answerer) A direct transport offered while the relay carries the channel. */
  private async answerUpgrade(sdp: string, epoch: number): Promise<void> {
    if (this.upgrade !== null && this.upgrade.epoch >= epoch) return;
    this.dropUpgrade();
    const upgrade = this.directBeside(epoch);
    try {
      const answer = await upgrade.answer(sdp);
      if (upgrade === this.upgrade) this.events.signal(this, "answer", answer, epoch);
    } catch {
      this.dropUpgrade(upgrade);
    }
  }

  private dropUpgrade(which?: DirectTransport): void {
    const upgrade = this.upgrade;
    if (upgrade === null || (which !== undefined && which !== upgrade)) return;
    this.upgrade = null;
    this.nextUpgrade = Date.now() + UPGRADE_EVERY_MS;
    upgrade.close();
  }

  /** The direct path opened: it carries the channel from now on (the sync settles
   * what the relay had in flight, as after any change of transport). */
  private promote(upgrade: DirectTransport): void {
    this.upgrade = null;
    this.switchTo(upgrade);
    this.onOpen(upgrade);
  }

  private replace(epoch: number, relay: boolean): Transport {
    const transport: Transport = relay
      ? new RelayTransport(
          epoch,
          (text) => this.events.relay(this, epoch, text),
          () => {
            this.onOpen(transport);
          },
        )
      : new DirectTransport(epoch, this.iceServers, {
          open: () => {
            this.onOpen(transport);
          },
          message: (text) => {
            this.onMessage(transport, text);
          },
          end: (reason) => {
            if (this.transport === transport) this.fail(reason);
          },
        });
    this.switchTo(transport);
    return transport;
  }

  /** `transport` carries the channel from now on (nothing synced on it yet); the one it
   * replaces is closed with the link. */
  private switchTo(transport: Transport): void {
    const old = this.transport;
    this.epoch = transport.epoch;
    this.transport = transport;
    this.syncedOut = this.syncedIn = false;
    this.paused = true;
    if (old !== null) this.retired.push(old);
  }

  // ---------------------------------------------------------------- traffic

  private onOpen(transport: Transport): void {
    if (transport !== this.transport) return;
    this.lastHeard = Date.now();
    this.sendSync(transport);
  }

  private sendSync(transport: Transport): void {
    if (this.syncedOut) return;
    this.syncedOut = true;
    this.pendingAck = 0;
    this.transmit(transport, { type: "sync", received: this.received });
  }

  private onMessage(transport: Transport, text: string): void {
    if (transport !== this.transport) return;
    this.lastHeard = Date.now();
    if (!this.syncedOut) this.sendSync(transport);
    let envelope: Envelope;
    try {
      envelope = JSON.parse(text) as Envelope;
    } catch {
      this.countForAck(text);
      return;
    }
    switch (envelope.type) {
      case "ping":
        this.transmit(transport, { type: "pong", seq: envelope.seq, sent_at: envelope.sent_at, busy: false });
        return;
      case "pong": {
        const pending = this.pings.get(envelope.seq);
        if (pending) {
          this.pings.delete(envelope.seq);
          pending.resolve(performance.now() - pending.at);
        }
        return;
      }
      case "sync":
        this.onSync(transport, envelope.received);
        return;
      default:
        break;
    }
    if (!this.syncedIn) {
      this.fail("failed");
      return;
    }
    if (envelope.type === "ack") {
      if (envelope.count < this.acked || envelope.count > this.sent) {
        this.fail("failed");
        return;
      }
      this.acknowledge(envelope.count);
      this.drain();
      return;
    }
    if (envelope.type === "bye") {
      this.fail("left");
      return;
    }
    this.events.envelope(this, envelope);
    this.countForAck(text);
  }

  private onSync(transport: Transport, received: number): void {
    if (this.syncedIn || received < this.acked || received > this.sent) {
      this.fail("failed");
      return;
    }
    this.acknowledge(received);
    this.syncedIn = true;
    this.paused = false;
    for (const old of this.retired.splice(0)) old.close();
    for (const message of this.unacked) {
      try {
        transport.send(message.text);
      } catch {
        this.fail("failed");
        return;
      }
    }
    // what was sent again counts in the window anew
    this.inFlight = this.costs.reduce((a, b) => a + b, 0);
    if (this.state === "connecting") {
      this.state = "connected";
      this.openedAt = Date.now();
      this.events.up(this);
    }
    this.drain();
  }

  private acknowledge(count: number): void {
    while (this.acked < count) {
      this.acked += 1;
      this.unacked.shift();
      this.inFlight -= this.costs.shift() ?? 0;
    }
  }

  private countForAck(text: string): void {
    this.received += 1;
    this.pendingAck += datagrams(utf8.encode(text).length);
    if (this.pendingAck >= ACK_EVERY_DATAGRAMS) this.sendAck();
    else
      this.ackTimer ??= setTimeout(() => {
        this.sendAck();
      }, ACK_DELAY_MS);
  }

  private sendAck(): void {
    if (this.ackTimer !== null) clearTimeout(this.ackTimer);
    this.ackTimer = null;
    if (this.pendingAck === 0 || this.transport === null) return;
    this.pendingAck = 0;
    this.transmit(this.transport, { type: "ack", count: this.received });
  }

  private transmit(transport: Transport, envelope: object): void {
    try {
      transport.send(JSON.stringify(envelope));
    } catch {
      if (transport === this.transport) this.fail("failed");
    }
  }

  /** Send a control or state envelope now, or in order once the window has room. */
  send(envelope: Envelope, id = ""): Promise<void> {
    if (this.state !== "connected" || this.ending) return Promise.reject(new Error("channel not open"));
    const text = JSON.stringify(envelope);
    const message: Sent = { id, text, cost: datagrams(utf8.encode(text).length) };
    if (this.backlog.length === 0 && this.ready(message.cost)) {
      this.go(message);
      return Promise.resolve();
    }
    return new Promise((resolve, reject) => {
      this.backlog.push({ message, went: resolve, failed: reject });
    });
  }

  private ready(cost: number): boolean {
    const t = this.transport;
    if (t === null || !t.opened || this.paused) return false;
    return this.inFlight === 0 || this.inFlight + cost <= WINDOW_DATAGRAMS;
  }

  private go(message: Sent): void {
    this.sent += 1;
    this.inFlight += message.cost;
    this.costs.push(message.cost);
    this.unacked.push(message);
    try {
      this.transport?.send(message.text);
    } catch {
      this.fail("failed");
    }
  }

  private drain(): void {
    while (this.backlog.length > 0 && this.ready(this.backlog[0]?.message.cost ?? 1)) {
      const queued = this.backlog.shift();
      if (queued === undefined) break;
      this.go(queued.message);
      queued.went();
    }
  }

  /** Round trip in milliseconds over the channel. */
  ping(timeoutMs = 5000): Promise<number> {
    const transport = this.transport;
    if (transport === null || !this.syncedIn) return Promise.reject(new Error("channel not open"));
    this.pingSeq += 1;
    const seq = this.pingSeq;
    return new Promise((resolve, reject) => {
      this.pings.set(seq, { resolve, at: performance.now() });
      this.transmit(transport, { type: "ping", seq, sent_at: Date.now() });
      setTimeout(() => {
        if (this.pings.delete(seq)) reject(new Error("no answer to a ping"));
      }, timeoutMs);
    });
  }

  private watch(): void {
    const now = Date.now();
    if (this.state === "disconnected") return;
    if (this.state === "connecting") {
      const relaying = this.transport?.relayed ?? false;
      if (this.offerer && !relaying && now - this.started > RELAY_AFTER_MS) this.offer(true);
      else if (now - this.started > CONNECT_TIMEOUT_MS) this.fail("failed");
      return;
    }
    if (this.upgrade !== null && now > this.upgradeUntil) this.dropUpgrade();
    else if (this.offerer && this.upgrade === null && now >= this.nextUpgrade && this.relayedAndOpen())
      this.tryUpgrade(now);
    if (now - this.lastHeard > PING_INTERVAL_MS * MISSED_PINGS) {
      this.fail("timeout");
      return;
    }
    if (this.transport !== null && now >= this.nextPing) {
      this.nextPing = now + PING_INTERVAL_MS;
      this.pingSeq += 1;
      this.transmit(this.transport, { type: "ping", seq: this.pingSeq, sent_at: now });
    }
  }

  // ---------------------------------------------------------------- the end

  private fail(reason: EndReason): void {
    if (this.ending) return;
    this.ending = true;
    this.events.down(
      this,
      reason,
      this.unacked.filter((m) => m.id !== "").map((m) => m.id),
    );
  }

  close(sayBye: boolean): void {
    this.ending = true;
    const transport = this.transport;
    if (sayBye && this.state === "connected" && transport !== null && this.syncedIn) {
      this.transmit(transport, { type: "bye" });
    }
    this.state = "disconnected";
    clearInterval(this.timer);
    if (this.ackTimer !== null) clearTimeout(this.ackTimer);
    for (const queued of this.backlog.splice(0)) queued.failed(new Error("channel closed"));
    this.dropUpgrade();
    setTimeout(() => {
      transport?.close();
      for (const old of this.retired.splice(0)) old.close();
    }, sayBye ? 50 : 0);
  }
}
