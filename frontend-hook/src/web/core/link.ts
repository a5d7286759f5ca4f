/**
 * One logical `live-control` channel to one peer, sans I/O: the rules of
 * docs/protocol.md's "Data channels", the same as sidecar/core/link.py and
 * decided by the same traces (tests/vectors/link/, run by test/traces.test.ts
 * here and tests/unit/test_traces.py there).
 *
 * Each input says what happened and when (`now`, milliseconds of a monotonic
 * clock); the outputs queue up for `take()`: actions for the shell that owns
 * the transports (src/web/link.ts: the browser's RTCPeerConnection, or the
 * leader's relay) and events for the owner of the link (the web peer).
 * `nextDeadline()` says when `tick(now)` is due. No timer, socket or clock here.
 * The reasons behind each rule and figure are in the Python module.
 */
import type { ControlEnvelope, DisconnectReason, StateEnvelope } from "../../generated/sidecar-types";
import { type Sent, Inbox, Outbox } from "./delivery";
import { decodeEnvelope, Malformed } from "./envelope";
import { ACK_DELAY_MS, ACK_STALL_MS, datagrams, WINDOW_DATAGRAMS } from "./flow";
import { byteSize } from "./text";

/** The SDP of an offer or answer for a transport carried through the leader. */
export const RELAY_SDP = "relay";

export const PING_INTERVAL_MS = 2000;
export const MISSED_PINGS = 3;
export const SILENCE_MS = PING_INTERVAL_MS * MISSED_PINGS;
export const CONNECT_TIMEOUT_MS = 10_000;
export const MIGRATE_MS = 5000;
export const OFFER_RESEND_MS = 1000;
export const PROBE_MS = 1000;
export const RELAY_AFTER_MS = 3000;
export const UPGRADE_EVERY_MS = 10_000;
export const UPGRADE_WINDOW_MS = 6000;
export const SUSPEND_MS = 2000;
export const MAX_PAYLOAD_BYTES = 64 * 1024;
export const MAX_MESSAGE_BYTES = MAX_PAYLOAD_BYTES + 2048;
export const MAX_UNACKED_DATAGRAMS = WINDOW_DATAGRAMS + datagrams(MAX_MESSAGE_BYTES);

export type LinkState = "connecting" | "connected" | "disconnected";
export type TransportEnd = "closed" | "failed";
export type SignalKind = "offer" | "answer";

export type Output =
  | { readonly kind: "create_offer"; readonly epoch: number }
  | { readonly kind: "create_answer"; readonly epoch: number; readonly sdp: string }
  | { readonly kind: "accept_answer"; readonly epoch: number; readonly sdp: string }
  | { readonly kind: "open_relay"; readonly epoch: number }
  | { readonly kind: "send"; readonly epoch: number; readonly text: string; readonly must: boolean }
  | { readonly kind: "signal"; readonly signal: SignalKind; readonly epoch: number; readonly sdp: string }
  | { readonly kind: "close"; readonly epoch: number }
  | { readonly kind: "up" }
  | { readonly kind: "down"; readonly reason: DisconnectReason; readonly unacked: string[] }
  | { readonly kind: "message"; readonly envelope: ControlEnvelope | StateEnvelope }
  | { readonly kind: "went"; readonly ticket: number }
  | { readonly kind: "dropped"; readonly ticket: number }
  | { readonly kind: "idle" }
  | { readonly kind: "pong"; readonly seq: number; readonly rttMs: number }
  | { readonly kind: "no_pong"; readonly seq: number };

/** The candidate pair a direct transport uses (the shell reads it). */
export interface Path {
  readonly local: string;
  readonly remote: string;
  readonly remoteType: string;
}

type Probe = "" | "path" | "woke";

interface Transport {
  readonly epoch: number;
  readonly relay: boolean;
  /** We made its offer (else we answered one). */
  readonly offering: boolean;
  opened: boolean;
  answered: boolean;
}

interface Ping {
  readonly sent: number;
  readonly deadline: number;
  readonly probe: Probe;
  readonly epoch: number;
}

function transport(epoch: number, relay: boolean, offering: boolean): Transport {
  return { epoch, relay, offering, opened: false, answered: false };
}

export interface LinkOptions {
  me: string;
  peerId: string;
  linkId: string;
  /** The lower peer id of the pair: it makes every offer of the channel. */
  offerer: boolean;
  /** The other side is a web peer: without a direct path in RELAY_AFTER_MS, relay. */
  webPeer: boolean;
  /** A direct path can exist (false when one side has no WebRTC): every transport is the relay. */
  direct?: boolean;
  now: number;
}

export class LinkCore {
  readonly me: string;
  readonly peerId: string;
  readonly linkId: string;
  readonly offerer: boolean;
  readonly webPeer: boolean;
  readonly direct: boolean;
  state: LinkState = "connecting";
  epoch = 0;
  openedAt: number | null = null;
  refused = 0;
  hostBusy = false;
  private out: Output[] = [];
  private current: Transport | null = null;
  private upgrade: Transport | null = null;
  private upgradeUntil = 0;
  private nextUpgrade: number;
  private triedEpoch = 0;
  private retired: number[] = [];
  private syncedOut = false;
  private syncedIn = false;
  private offerSdp: string | null = null;
  private answerSdp: string | null = null;
  private migratingUntil: number | null = null;
  private started: number;
  /** When the core last ran (an input or a tick). */
  private awake: number;
  private lastResend: number;
  private nextPing: number;
  private lastHeard: number;
  private readonly outbox = new Outbox();
  private readonly inbox = new Inbox();
  private backlog: [number, Sent][] = [];
  private tickets = 0;
  private wantIdle = false;
  private pingSeq = 0;
  private readonly pings = new Map<number, Ping>();
  private ackDue: number | null = null;
  private held = false;
  private peerBusy = false;
  private failed = false;
  private closing = false;

  constructor(options: LinkOptions) {
    this.me = options.me;
    this.peerId = options.peerId;
    this.linkId = options.linkId;
    this.offerer = options.offerer;
    this.webPeer = options.webPeer;
    this.direct = options.direct ?? true;
    const now = options.now;
    this.nextUpgrade = now + UPGRADE_EVERY_MS;
    this.started = now;
    this.awake = now;
    this.lastResend = now;
    this.nextPing = now + PING_INTERVAL_MS;
    this.lastHeard = now;
  }

  // ---------------------------------------------------------------- queries

  take(): Output[] {
    const out = this.out;
    this.out = [];
    return out;
  }

  get via(): "direct" | "relay" {
    return this.current?.relay ? "relay" : "direct";
  }

  get migrating(): boolean {
    return this.migratingUntil !== null;
  }

  get isOpen(): boolean {
    return this.state === "connected" && !this.failed && !this.closing;
  }

  unacked(): string[] {
    return this.outbox
      .unacked()
      .map((m) => m.messageId)
      .filter((id) => id !== "");
  }

  nextDeadline(): number | null {
    if (this.state === "disconnected" || this.failed || this.closing) return null;
    const due: number[] = [...this.pings.values()].map((p) => p.deadline);
    if (this.ackDue !== null) due.push(this.ackDue);
    if (this.state === "connecting") {
      if (this.relayFallbackPending()) due.push(this.started + RELAY_AFTER_MS);
      due.push(this.started + CONNECT_TIMEOUT_MS);
      if (this.offerSdp !== null) due.push(Math.max(this.started, this.lastResend) + OFFER_RESEND_MS);
      return Math.min(...due);
    }
    if (this.upgrade !== null) due.push(this.upgradeUntil);
    else if (this.mayUpgrade()) due.push(this.nextUpgrade);
    if (this.migratingUntil !== null) {
      due.push(this.migratingUntil);
      if (this.offerSdp !== null) due.push(this.lastResend + OFFER_RESEND_MS);
      return Math.min(...due);
    }
    due.push(this.lastHeard + SILENCE_MS);
    const stalled = this.outbox.sendWindow.stalledSince();
    if (stalled !== null && !this.peerBusy) due.push(stalled + ACK_STALL_MS);
    due.push(this.nextPing);
    return Math.min(...due);
  }

  // ------------------------------------------------------------ negotiation

  offer(now: number, relay = false): void {
    this.advance(now);
    if (this.closing || this.failed) return;
    relay ||= !this.direct;
    const epoch = (this.triedEpoch = Math.max(this.epoch, this.triedEpoch) + 1);
    const t = this.replace(epoch, relay, true, now);
    if (relay) {
      this.offerSdp = RELAY_SDP;
      this.lastResend = now;
      this.signal("offer", t.epoch, RELAY_SDP);
    } else {
      this.out.push({ kind: "create_offer", epoch: t.epoch });
    }
  }

  routeChanged(now: number): void {
    this.advance(now);
    if (this.offerSdp !== null && this.current !== null && !this.failed) {
      this.lastResend = now;
      this.signal("offer", this.current.epoch, this.offerSdp);
    }
  }

  localDescription(epoch: number, sdp: string, now: number): void {
    this.advance(now);
    const upgrade = this.upgrade;
    if (upgrade?.epoch === epoch) {
      this.signal(upgrade.offering ? "offer" : "answer", epoch, sdp);
      return;
    }
    const t = this.current;
    if (t?.epoch !== epoch || t.relay || this.failed || this.closing) return;
    if (t.offering) {
      this.offerSdp = sdp;
      this.lastResend = now;
      this.signal("offer", epoch, sdp);
    } else {
      this.answerSdp = sdp;
      this.signal("answer", epoch, sdp);
    }
  }

  negotiationFailed(epoch: number, now: number): void {
    this.advance(now);
    if (this.upgrade?.epoch === epoch) this.dropUpgrade(now);
    else if (this.current?.epoch === epoch && !this.relayInstead(now)) this.fail("failed");
  }

  offerReceived(epoch: number, sdp: string, now: number): void {
    this.advance(now);
    if (this.offerer || epoch < this.epoch || this.closing || this.failed) return;
    if (epoch === this.epoch) {
      if (this.answerSdp !== null) this.signal("answer", epoch, this.answerSdp);
      return;
    }
    if (sdp !== RELAY_SDP && !this.direct) return; // the offerer falls back to the relay
    if (this.relayedAndOpen() && sdp !== RELAY_SDP) {
      this.answerUpgrade(epoch, sdp, now);
      return;
    }
    const relay = sdp === RELAY_SDP;
    this.replace(epoch, relay, false, now);
    if (relay) {
      this.answerSdp = RELAY_SDP;
      this.signal("answer", epoch, RELAY_SDP);
      this.transportOpen(epoch, now);
    } else {
      this.out.push({ kind: "create_answer", epoch, sdp });
    }
  }

  answerReceived(epoch: number, sdp: string, now: number): void {
    this.advance(now);
    const upgrade = this.upgrade;
    if (upgrade?.epoch === epoch && upgrade.offering) {
      if (!upgrade.answered) {
        upgrade.answered = true;
        this.out.push({ kind: "accept_answer", epoch, sdp });
      }
      return;
    }
    const t = this.current;
    if (t?.epoch !== epoch || !t.offering || t.answered || this.failed) return;
    t.answered = true;
    this.offerSdp = null;
    if (t.relay) this.transportOpen(epoch, now);
    else this.out.push({ kind: "accept_answer", epoch, sdp });
  }

  relayReceived(epoch: number, data: string, now: number): void {
    this.advance(now);
    const t = this.current;
    if (!t?.relay || t.epoch !== epoch) return;
    if (!t.opened) this.transportOpen(epoch, now);
    this.transportMessage(epoch, data, now);
  }

  // ---------------------------------------------------------- the transports

  transportOpen(epoch: number, now: number): void {
    this.advance(now);
    if (this.upgrade?.epoch === epoch) this.promote(now);
    const t = this.current;
    if (t?.epoch !== epoch || this.failed || this.closing) return;
    t.opened = true;
    this.lastHeard = now;
    this.sendSync(t);
  }

  transportClosed(epoch: number, reason: TransportEnd, now: number): void {
    this.advance(now);
    if (this.upgrade?.epoch === epoch) {
      this.dropUpgrade(now);
      return;
    }
    if (this.current?.epoch !== epoch) return;
    if (this.migrating && !this.offerer) return;
    if (this.relayInstead(now)) return;
    this.fail(reason);
  }

  sendFailed(epoch: number, now: number): void {
    this.advance(now);
    if (this.current?.epoch === epoch && !this.migrating) this.fail("failed");
  }

  /** A binary message: the channel carries text, so it is counted and dropped. */
  transportBinary(epoch: number, size: number, now: number): void {
    if (this.heard(epoch, now) === null) return;
    this.refused += 1;
    if (size > MAX_MESSAGE_BYTES) this.fail("failed");
    else this.countForAck(size, now);
  }

  /** Something arrived on transport `epoch`: the transport it is (null: a replaced
   * one, whose stragglers are sent again after the sync), heard from now. */
  private heard(epoch: number, now: number): Transport | null {
    this.advance(now);
    if (this.upgrade?.epoch === epoch) this.promote(now); // the other side's opened first
    const t = this.current;
    if (t?.epoch !== epoch || this.failed || this.closing) return null;
    t.opened = true;
    this.lastHeard = now;
    if (!this.syncedOut) this.sendSync(t);
    return t;
  }

  transportMessage(epoch: number, data: string, now: number): void {
    const t = this.heard(epoch, now);
    if (t === null) return;
    const size = byteSize(data);
    if (size > MAX_MESSAGE_BYTES) {
      this.refused += 1;
      this.fail("failed");
      return;
    }
    let envelope;
    try {
      envelope = decodeEnvelope(data);
    } catch (err) {
      if (!(err instanceof Malformed)) throw err;
      this.refused += 1;
      this.countForAck(size, now);
      return;
    }
    switch (envelope.type) {
      case "ping":
        this.send(t.epoch, JSON.stringify({ type: "pong", seq: envelope.seq, sent_at: envelope.sent_at, busy: this.held }), false);
        return;
      case "pong": {
        this.peerBusy = envelope.busy ?? false;
        const pending = this.pings.get(envelope.seq);
        if (pending !== undefined) {
          this.pings.delete(envelope.seq);
          if (pending.probe === "") this.out.push({ kind: "pong", seq: envelope.seq, rttMs: now - pending.sent });
        }
        return;
      }
      case "sync":
        this.onSync(t, envelope.received, now);
        return;
      default:
        break;
    }
    if (!this.syncedIn) {
      this.fail("failed");
      return;
    }
    if (envelope.type === "ack") {
      try {
        this.outbox.onAck(envelope.count, now);
      } catch {
        this.fail("failed");
        return;
      }
      this.drain(now);
    } else if (envelope.type === "bye") {
      this.fail("left");
    } else {
      this.out.push({ kind: "message", envelope });
      this.countForAck(size, now);
    }
  }

  pathChanged(now: number, lostLocal: ReadonlySet<string>, remoteAddresses: ReadonlySet<string> | null, path: Path | null): void {
    this.advance(now);
    if (this.closing || this.failed || this.state === "disconnected") return;
    const t = this.current;
    if (this.state === "connecting" || !t?.opened) {
      if (this.offerer && lostLocal.size > 0) this.offer(now);
      return;
    }
    if (this.migrating) return;
    const direct = path !== null && (path.remoteType === "host" || path.remoteType === "prflx");
    if (path === null || (remoteAddresses !== null && !direct)) {
      this.probe(now, "path");
      return;
    }
    let dead = lostLocal.has(path.local);
    if (remoteAddresses !== null) dead ||= !remoteAddresses.has(path.remote);
    if (dead) this.pathDead(now);
  }

  // ---------------------------------------------------------------- sending

  /** Send now (null), or queued: a ticket, with `went` or `dropped` later. Throws when not open. */
  sendMessage(text: string, messageId: string, now: number): number | null {
    this.advance(now);
    if (!this.isOpen) throw new Error(`data channel to ${this.peerId} is not open`);
    const message: Sent = { messageId, text, cost: datagrams(byteSize(text)) };
    if (this.backlog.length === 0 && this.ready(message.cost)) {
      this.go(message, now);
      return null;
    }
    this.tickets += 1;
    this.backlog.push([this.tickets, message]);
    this.wantIdle = true;
    return this.tickets;
  }

  sendNow(text: string, now: number): boolean {
    this.advance(now);
    if (!this.isOpen) return false;
    const message: Sent = { messageId: "", text, cost: datagrams(byteSize(text)) };
    if (this.backlog.length > 0 || !this.ready(message.cost)) {
      this.wantIdle = true;
      return false;
    }
    this.go(message, now);
    return true;
  }

  cancel(ticket: number): void {
    this.backlog = this.backlog.filter(([t]) => t !== ticket);
  }

  ping(now: number, timeoutMs: number): number {
    this.advance(now);
    const t = this.current;
    if (t === null || !this.syncedIn || this.failed || this.closing) {
      throw new Error(`data channel to ${this.peerId} is not open`);
    }
    return this.sendPing(t, now, timeoutMs, "");
  }

  /** Whether our host does not take what we give it: acks are then held back. */
  setHostBusy(busy: boolean): void {
    this.hostBusy = busy;
    if (!busy && this.held) this.sendAck();
  }

  // ------------------------------------------------------------------ time

  tick(now: number): void {
    if (this.nextDeadline() === null) return;
    this.advance(now);
    if (this.ackDue !== null && now >= this.ackDue) this.sendAck();
    for (const [seq, pending] of [...this.pings]) {
      if (now >= pending.deadline && this.pings.delete(seq)) this.pingLost(seq, pending, now);
    }
    if (this.failed) return;
    if (this.state === "connecting") {
      if (this.relayFallbackPending() && now >= this.started + RELAY_AFTER_MS) this.offer(now, true);
      else if (now >= this.started + CONNECT_TIMEOUT_MS) this.fail("failed");
      else if (this.offerSdp !== null && now >= this.started + OFFER_RESEND_MS) this.resendOffer(now);
      return;
    }
    if (this.upgrade !== null && now >= this.upgradeUntil) this.dropUpgrade(now);
    else if (this.mayUpgrade() && now >= this.nextUpgrade) this.tryUpgrade(now);
    if (this.migratingUntil !== null) {
      if (now >= this.migratingUntil) this.fail("failed");
      else this.resendOffer(now);
      return;
    }
    if (now >= this.lastHeard + SILENCE_MS) {
      this.fail("timeout");
      return;
    }
    if (this.outbox.sendWindow.stalledFor(now) >= ACK_STALL_MS && !this.peerBusy) {
      this.fail("failed");
      return;
    }
    const t = this.current;
    if (now >= this.nextPing && t !== null) {
      this.nextPing = now + PING_INTERVAL_MS;
      this.pingSeq += 1;
      this.send(t.epoch, JSON.stringify({ type: "ping", seq: this.pingSeq, sent_at: Math.trunc(now) }), false);
    }
  }

  /** The clock moves to `now`; a deadline passed by more than SUSPEND_MS means we
   * were not running, and the whole time since we last ran was our sleep. */
  private advance(now: number): void {
    if (now - this.awake > SUSPEND_MS) {
      const due = this.nextDeadline();
      if (due !== null && now - due > SUSPEND_MS) this.suspended(now, now - this.awake);
    }
    this.awake = Math.max(this.awake, now);
  }

  private suspended(now: number, slept: number): void {
    this.started += slept;
    if (this.migratingUntil !== null) this.migratingUntil += slept;
    this.outbox.sendWindow.suspended(slept);
    if (this.state === "connected" && this.current !== null) {
      this.lastHeard = now;
      this.nextPing = now + PING_INTERVAL_MS;
      this.probe(now, "woke");
    }
  }

  // ---------------------------------------------------------------- the end

  close(sayBye: boolean): void {
    if (this.closing) return;
    this.closing = true;
    this.ackDue = null;
    for (const [ticket] of this.backlog) this.out.push({ kind: "dropped", ticket });
    this.backlog = [];
    const t = this.current;
    if (sayBye && this.state === "connected" && t !== null && this.syncedIn) {
      this.send(t.epoch, JSON.stringify({ type: "bye" }), false);
    }
    this.state = "disconnected";
    for (const seq of this.pings.keys()) this.out.push({ kind: "no_pong", seq });
    this.pings.clear();
    const epochs = [...this.retired];
    this.retired = [];
    for (const extra of [t, this.upgrade]) if (extra !== null) epochs.push(extra.epoch);
    this.upgrade = null;
    for (const epoch of epochs) this.out.push({ kind: "close", epoch });
  }

  // --------------------------------------------------------------- internals

  private fail(reason: DisconnectReason): void {
    if (this.closing || this.failed) return;
    this.failed = true;
    this.out.push({ kind: "down", reason, unacked: this.unacked() });
  }

  private signal(signal: SignalKind, epoch: number, sdp: string): void {
    this.out.push({ kind: "signal", signal, epoch, sdp });
  }

  private send(epoch: number, text: string, must: boolean): void {
    this.out.push({ kind: "send", epoch, text, must });
  }

  private resendOffer(now: number): void {
    if (this.offerSdp !== null && now >= this.lastResend + OFFER_RESEND_MS && this.current !== null) {
      this.lastResend = now;
      this.signal("offer", this.current.epoch, this.offerSdp);
    }
  }

  private replace(epoch: number, relay: boolean, offering: boolean, now: number): Transport {
    this.dropUpgrade(now);
    const t = transport(epoch, relay, offering);
    const old = this.switchTo(t, now);
    if (relay) this.out.push({ kind: "open_relay", epoch });
    if (old !== null) {
      if (this.offerer) this.retired.push(old.epoch);
      else this.out.push({ kind: "close", epoch: old.epoch });
    }
    return t;
  }

  private switchTo(t: Transport, now: number): Transport | null {
    const old = this.current;
    this.epoch = t.epoch;
    this.current = t;
    this.offerSdp = this.answerSdp = null;
    this.syncedOut = this.syncedIn = false;
    this.outbox.newTransport();
    this.ackDue = null;
    if (this.state === "connected") this.migratingUntil = now + MIGRATE_MS;
    return old;
  }

  private sendSync(t: Transport): void {
    if (this.syncedOut) return;
    this.syncedOut = true;
    this.send(t.epoch, JSON.stringify({ type: "sync", received: this.inbox.sync() }), true);
  }

  private onSync(t: Transport, received: number, now: number): void {
    if (this.syncedIn) {
      this.fail("failed");
      return;
    }
    let again: Sent[];
    try {
      again = this.outbox.onSync(received, now);
    } catch {
      this.fail("failed");
      return;
    }
    this.syncedIn = true;
    this.migratingUntil = null;
    for (const epoch of this.retired) this.out.push({ kind: "close", epoch });
    this.retired = [];
    for (const message of again) this.send(t.epoch, message.text, true);
    if (this.state === "connecting") {
      this.state = "connected";
      this.openedAt = now;
      this.nextPing = now + PING_INTERVAL_MS;
      this.out.push({ kind: "up" });
    }
    this.drain(now);
  }

  private countForAck(size: number, now: number): void {
    const due = this.inbox.onMessage(datagrams(size));
    if (this.inbox.clock.pending > MAX_UNACKED_DATAGRAMS) this.fail("failed");
    else if (due) this.sendAck();
    else this.ackDue ??= now + ACK_DELAY_MS;
  }

  private sendAck(): void {
    this.ackDue = null;
    this.held = this.hostBusy;
    if (this.held) return;
    const t = this.current;
    const count = this.inbox.takeAck();
    if (count !== null && t !== null) this.send(t.epoch, JSON.stringify({ type: "ack", count }), false);
  }

  private ready(cost: number): boolean {
    const t = this.current;
    if (t === null || !t.opened || this.migrating || this.failed) return false;
    return this.outbox.canSend(cost);
  }

  private go(message: Sent, now: number): void {
    this.outbox.onSent(message, now);
    if (this.current !== null) this.send(this.current.epoch, message.text, true);
  }

  private drain(now: number): void {
    for (;;) {
      const first = this.backlog[0];
      if (first === undefined || !this.ready(first[1].cost)) break;
      this.backlog.shift();
      this.go(first[1], now);
      this.out.push({ kind: "went", ticket: first[0] });
    }
    if (this.wantIdle && this.backlog.length === 0 && this.isOpen) {
      this.wantIdle = false;
      this.out.push({ kind: "idle" });
    }
  }

  private sendPing(t: Transport, now: number, timeoutMs: number, probe: Probe): number {
    this.pingSeq += 1;
    const seq = this.pingSeq;
    this.pings.set(seq, { sent: now, deadline: now + timeoutMs, probe, epoch: t.epoch });
    this.send(t.epoch, JSON.stringify({ type: "ping", seq, sent_at: Math.trunc(now) }), false);
    return seq;
  }

  private probe(now: number, why: Probe): void {
    const t = this.current;
    if (t !== null && this.syncedIn) this.sendPing(t, now, PROBE_MS, why);
    else if (t !== null) this.probeFailed(t.epoch, why, now);
  }

  private pingLost(seq: number, pending: Ping, now: number): void {
    if (pending.probe === "") this.out.push({ kind: "no_pong", seq });
    else this.probeFailed(pending.epoch, pending.probe, now);
  }

  private probeFailed(epoch: number, why: Probe, now: number): void {
    if (this.current?.epoch !== epoch || this.migrating) return;
    if (why === "woke") this.fail("timeout");
    else this.pathDead(now);
  }

  private pathDead(now: number): void {
    if (this.offerer) this.offer(now);
    else {
      this.migratingUntil = now + MIGRATE_MS;
      this.outbox.newTransport();
    }
  }

  // ------------------------------------------------- from the relay to a direct path

  private relayFallbackPending(): boolean {
    return this.offerer && this.webPeer && this.current?.relay !== true;
  }

  /** (Offerer, with a web peer) The direct transport failed before the channel ever
   * opened: the relay now, not a retry of what just failed. */
  private relayInstead(now: number): boolean {
    if (this.state !== "connecting" || !this.relayFallbackPending()) return false;
    this.offer(now, true);
    return true;
  }

  private relayedAndOpen(): boolean {
    const t = this.current;
    return this.state === "connected" && !this.migrating && t !== null && t.relay && this.syncedIn;
  }

  private mayUpgrade(): boolean {
    return this.offerer && this.webPeer && this.direct && this.relayedAndOpen();
  }

  private tryUpgrade(now: number): void {
    this.nextUpgrade = now + UPGRADE_EVERY_MS;
    const epoch = (this.triedEpoch = Math.max(this.epoch, this.triedEpoch) + 1);
    this.upgrade = transport(epoch, false, true);
    this.upgradeUntil = now + UPGRADE_WINDOW_MS;
    this.out.push({ kind: "create_offer", epoch });
  }

  private answerUpgrade(epoch: number, sdp: string, now: number): void {
    if (this.upgrade !== null && this.upgrade.epoch >= epoch) return;
    this.dropUpgrade(now);
    this.upgrade = transport(epoch, false, false);
    this.upgradeUntil = now + UPGRADE_WINDOW_MS;
    this.out.push({ kind: "create_answer", epoch, sdp });
  }

  private dropUpgrade(now: number): void {
    const upgrade = this.upgrade;
    if (upgrade === null) return;
    this.upgrade = null;
    this.nextUpgrade = now + UPGRADE_EVERY_MS;
    this.out.push({ kind: "close", epoch: upgrade.epoch });
  }

  private promote(now: number): void {
    const upgrade = this.upgrade;
    if (upgrade === null) return;
    this.upgrade = null;
    upgrade.opened = true;
    const old = this.switchTo(upgrade, now);
    if (old !== null) this.retired.push(old.epoch);
  }
}
