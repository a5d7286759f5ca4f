/**
 * A web peer: a page that joins a room with nothing installed (docs/api.md,
 * "Web peers"). It answers the same methods as the sidecar's stdio API and
 * emits the same notifications, so `useWebRTC` runs over it unchanged.
 *
 * It can never lead (a page serves nothing): it asks the device that served it
 * (or any peer) where the leader is, registers there, keeps a `live-control`
 * channel with every peer the mesh pairs it with (the browser's own
 * RTCPeerConnection, or the leader's signaling when no direct path opens), and
 * when the leader is lost goes to the successor the last peer list names.
 */
import type {
  ControlEnvelope,
  DisconnectReason,
  LeaderStatus,
  MessageParams,
  PeerInfo,
  PeerRecord,
  SendControlMessageParams,
  SendResult,
  SignalMessage,
  SignalPeer,
  StartPeerParams,
  StateEnvelope,
} from "../generated/sidecar-types";
import { constantTimeEqual, Identity, randomHex, sdpAuth, uuid4 } from "./core/crypto";
import { backoffMs, isOfferer, MAX_LINKS, OfferBudget, unwanted, wants } from "./core/mesh";
import { Replica } from "./core/replica";
import { keyProblem, StateError, valueSize } from "./core/state";
import { hasWebRTC, Link } from "./link";
import { pairWith, type PairingSecret, queryRoom, SignalingClient, SignalingError } from "./signaling";

export interface WebPeerOptions {
  /** A signaling server of the room: `ws://<device address>:<port>/signal` (the page's own host). */
  url: string;
  /** STUN/TURN servers for the browser's data channels. */
  iceServers?: RTCIceServer[];
  /** Whether the page is not taking what the peer gives it: its acks then wait,
   * so senders wait rather than this page's memory grow (default: never). */
  hostBusy?: () => boolean;
}

type Listener = (params: unknown) => void;

/** An error the sidecar's API would answer: its JSON-RPC code, message and data. */
export class RpcError extends Error {
  constructor(
    readonly code: number,
    message: string,
    readonly data?: unknown,
  ) {
    super(message);
  }
}

const MAX_PAYLOAD_BYTES = 64 * 1024;
/** Longest a send waits for a peer's send window (the sidecar's SEND_WAIT_S). */
const SEND_WAIT_MS = 10_000;
const SUCCESSOR_TRIES = 3;
/** Revoked peers whose signals stay refused (the sidecar's MAX_REVOKED_KEPT). */
const MAX_REVOKED_KEPT = 256;

function rank(p: SignalPeer): [number, number, string] {
  return [p.peer_type === "controller" ? 0 : 1, p.started_at, p.peer_id];
}

function before(a: SignalPeer, b: SignalPeer): boolean {
  const [x, y] = [rank(a), rank(b)];
  return x[0] !== y[0] ? x[0] < y[0] : x[1] !== y[1] ? x[1] < y[1] : x[2] < y[2];
}

export class WebPeer {
  private readonly listeners = new Map<string, Set<Listener>>();
  private identity: Identity | null = null;
  private options: StartPeerParams | null = null;
  private me: SignalPeer | null = null;
  private client: SignalingClient | null = null;
  private leaderId: string | null = null;
  private term = 0;
  private members: SignalPeer[] = [];
  private readonly links = new Map<string, Link>();
  private readonly attempts = new Map<string, number>();
  private readonly offers = new OfferBudget();
  /** Peers a rotation shut out of the room: nothing of theirs is taken again. */
  private readonly revoked = new Set<string>();
  /** The device that served this page (the first record its query answered). */
  private servedBy: string | null = null;
  private replica: Replica | null = null;
  private joinSeq = 0;
  private stopped = true;
  /** Looking for the next leader after losing one (see `follow`). */
  private following = false;

  constructor(private readonly opts: WebPeerOptions) {}

  // ------------------------------------------------------------ events out

  on(event: string, listener: Listener): () => void {
    let set = this.listeners.get(event);
    if (!set) this.listeners.set(event, (set = new Set()));
    set.add(listener);
    return () => set.delete(listener);
  }

  private emit(event: string, params: unknown): void {
    for (const listener of this.listeners.get(event) ?? []) listener(params);
  }

  // ------------------------------------------------------------ the API

  /** The sidecar's methods by name (what the hook's transport calls). */
  async call(method: string, params: Record<string, unknown> = {}): Promise<unknown> {
    switch (method) {
      case "start_peer":
        return this.start(params as unknown as StartPeerParams);
      case "stop_peer":
        this.stop();
        return null;
      case "send_control_message":
        return this.send(params as unknown as SendControlMessageParams);
      case "get_connected_peers":
        return this.connectedPeers();
      case "get_leader_status":
        return this.leaderStatus();
      case "get_state":
        return this.replica?.current() ?? [];
      case "ping_peer": {
        const link = this.openLink(String(params.peer_id));
        if (!link) throw new RpcError(-32003, `Peer not connected: ${String(params.peer_id)}`);
        return { rtt_ms: Math.round((await link.ping()) * 1000) / 1000 };
      }
      default:
        throw new RpcError(-32601, `Method not found: ${method}`);
    }
  }

  async start(options: StartPeerParams): Promise<PeerInfo> {
    if (!this.stopped) throw new RpcError(-32002, "Peer already started: call stop_peer first");
    this.stopped = false;
    this.identity = new Identity();
    this.options = { room: "default", mesh: "controllers", echo: false, ...options };
    this.me = {
      peer_id: this.identity.peerId,
      name: options.name,
      peer_type: options.peer_type,
      display_class: options.display_class ?? null,
      started_at: Date.now(),
      addresses: [],
      port: 0,
      webrtc: hasWebRTC(),
    };
    const secret: PairingSecret | null = options.pairing_code
      ? { kind: "code", value: options.pairing_code }
      : options.pairing_token
        ? { kind: "token", value: options.pairing_token }
        : null;
    this.replica = new Replica(
      this.me.peer_id,
      () => [...this.links.values()].filter((l) => l.state === "connected"),
      (peerId) => this.openLink(peerId),
      (entry) => {
        this.emit("webrtc:state", entry);
      },
      () => Date.now(),
    );
    try {
      if (secret !== null) await this.pair(secret);
      await this.findAndJoin(this.opts.url);
    } catch (err) {
      this.stop(); // nothing is left running, as with the sidecar
      throw err;
    }
    return this.info(this.me);
  }

  /** Pairing with the page's own device (start_peer with `pairing_code` or
   * `pairing_token`): the room key, told as `webrtc:paired`, used from now on. */
  private async pair(secret: PairingSecret): Promise<void> {
    const room = this.room;
    let roomKey: string;
    try {
      roomKey = await pairWith(this.opts.url, room, secret);
    } catch (err) {
      const code = err instanceof SignalingError ? err.code : "refused";
      const reason = err instanceof Error ? err.message : String(err);
      throw new RpcError(-32005, `Pairing failed: ${reason}`, { reason, code });
    }
    if (!this.options) return;
    this.options = { ...this.options, room_key: roomKey, pairing_code: null, pairing_token: null };
    this.emit("webrtc:paired", { room, room_key: roomKey });
  }

  /** Started, but without a leader and no longer looking for one (lost while the
   * page slept, say): start again. While it follows a successor it needs nothing. */
  get needsRestart(): boolean {
    return !this.stopped && this.client === null && !this.following;
  }

  stop(): void {
    if (this.stopped) return;
    this.stopped = true;
    this.following = false;
    for (const link of this.links.values()) link.close(true);
    this.links.clear();
    this.client?.close(true, this.me?.peer_id ?? "");
    this.client = null;
    this.leaderId = null;
  }

  // ------------------------------------------------------------ the room

  private get room(): string {
    return this.options?.room ?? "default";
  }

  private get key(): string | null {
    return this.options?.room_key ?? null;
  }

  /** Ask the peer at `url` where the leader is, then register there. */
  private async findAndJoin(url: string): Promise<void> {
    let records: PeerRecord[];
    try {
      records = await queryRoom(url, this.room, this.key);
      if (url === this.opts.url) this.servedBy = records[0]?.peer_id ?? this.servedBy;
    } catch (err) {
      if (err instanceof SignalingError && err.code === "forbidden") {
        // A keyed room, and we have no key, or one it no longer takes (rotated).
        const reason = this.key === null ? "needs_key" : "key_refused";
        const what = this.key === null ? "this room is keyed: pair with a member's code" : "the room no longer takes this key: pair again";
        throw new RpcError(-32003, `Peer not connected: ${what}`, { reason });
      }
      throw err;
    }
    const leader = records.find((r) => r.role === "leader");
    if (!leader) throw new RpcError(-32003, "no leader in this room yet");
    await this.join(leader);
  }

  private async join(leader: PeerRecord | SignalPeer): Promise<void> {
    const identity = this.identity;
    const me = this.me;
    if (!identity || !me || this.stopped) return;
    let lastError: unknown = null;
    for (const address of leader.addresses ?? []) {
      const client = new SignalingClient({
        message: (frame) => {
          if (this.client === client) this.onFrame(frame);
        },
        lost: (reason) => {
          if (this.client === client) this.onLost(reason);
        },
      });
      this.joinSeq += 1;
      try {
        const registered = await client.join(
          `ws://${address}:${String(leader.port ?? 0)}/signal`,
          me,
          this.room,
          this.key,
          identity,
          this.joinSeq,
        );
        this.client?.close(false, me.peer_id);
        this.client = client;
        this.roomChanged(registered.leader_id, registered.term, registered.peers);
        for (const link of this.links.values()) link.routeChanged();
        return;
      } catch (err) {
        lastError = err;
      }
    }
    throw lastError instanceof SignalingError ? new RpcError(-32003, lastError.message) : lastError;
  }

  private onLost(reason: string): void {
    if (this.stopped) return;
    console.info(`mobile-worship: leader lost (${reason})`);
    const old = this.leaderId;
    this.client = null;
    this.leaderId = null;
    this.emit("webrtc:leader_changed", { leader_id: null, is_leader: false, term: this.term });
    this.following = true;
    const successors = this.members
      .filter((m) => m.peer_id !== old && (m.port ?? 0) > 0 && (m.addresses ?? []).length > 0)
      .sort((a, b) => (before(a, b) ? -1 : 1));
    void this.follow(successors, 0);
  }

  /** Try the successors in order, a few times, then ask the page's device again. */
  private async follow(successors: SignalPeer[], attempt: number): Promise<void> {
    for (const next of successors) {
      if (this.stopped || this.client) break;
      try {
        await this.join(next);
        break;
      } catch {
        // not leading (yet), or gone: the next one
      }
    }
    if (this.stopped || this.client) {
      this.following = false;
      return;
    }
    try {
      await this.findAndJoin(this.opts.url);
      this.following = false;
    } catch {
      if (attempt < SUCCESSOR_TRIES * 20) {
        setTimeout(() => void this.follow(successors, attempt + 1), 500);
      } else {
        this.following = false; // given up: the page starts again when it can
      }
    }
  }

  private roomChanged(leaderId: string, term: number, peers: SignalPeer[]): void {
    const newLeader = leaderId !== this.leaderId;
    this.leaderId = leaderId;
    this.term = term;
    this.members = peers.filter((p) => !this.revoked.has(p.peer_id));
    if (newLeader) this.emit("webrtc:leader_changed", { leader_id: leaderId, is_leader: false, term });
    const me = this.me;
    if (!me) return;
    const listed = this.members;
    const everyone = listed.some((p) => p.peer_id === me.peer_id) ? listed : [...listed, me];
    this.emit("webrtc:peer_list_changed", { peers: everyone.map((p) => this.info(p)) });
    // Under this leader, channels the mesh keeps no more go (paired while a display led).
    const linked = listed.filter((p) => this.links.has(p.peer_id));
    for (const peerId of unwanted(this.options?.mesh ?? "controllers", me, linked, leaderId)) {
      const link = this.links.get(peerId);
      if (link) this.onDown(link, "closed", link.unacked());
    }
    for (const peer of listed) {
      if (peer.peer_id === me.peer_id || !this.wants(peer)) continue;
      if (this.links.has(peer.peer_id) || !isOfferer(me.peer_id, peer.peer_id)) continue;
      if (this.links.size >= MAX_LINKS) break; // as the sidecar: a room cannot make a page open more
      this.newLink(peer.peer_id, randomHex(8), true);
    }
  }

  private wants(other: SignalPeer): boolean {
    const me = this.me;
    return me !== null && wants(this.options?.mesh ?? "controllers", me, other, this.leaderId);
  }

  private onFrame(frame: SignalMessage): void {
    const me = this.me;
    if (!me) return;
    if ("from" in frame && this.revoked.has(frame.from)) return;
    switch (frame.type) {
      case "rekey":
        this.rekeyed(frame.room_key, frame.revoke ?? []);
        return;
      case "peer_list":
        if (frame.leader_id !== this.leaderId) {
          // a redirect: the leader stepped down for another; it closes us next
          this.members = frame.peers;
          return;
        }
        this.roomChanged(frame.leader_id, frame.term, frame.peers);
        return;
      case "offer": {
        if (frame.to !== me.peer_id || !this.authentic(frame.from, "offer", frame.link, frame.epoch, frame.sdp, frame.auth)) return;
        let link = this.links.get(frame.from);
        // the same rules as the sidecar's channels: a budget of new transports per
        // peer, only the offerer of a pair the mesh keeps, at most MAX_LINKS channels
        if ((link === undefined || frame.epoch > link.core.epoch) && !this.offers.take(frame.from, performance.now())) return;
        if (link?.linkId !== frame.link) {
          const peer = this.members.find((m) => m.peer_id === frame.from);
          if (!peer || !this.wants(peer) || !isOfferer(frame.from, me.peer_id)) return;
          if (link === undefined && this.links.size >= MAX_LINKS) return;
          if (link !== undefined) this.onDown(link, "closed", link.unacked()); // the offerer started anew
          link = this.newLink(frame.from, frame.link, false);
        }
        link.onOffer(frame.sdp, frame.epoch, frame.relay ?? null);
        return;
      }
      case "answer": {
        const link = this.links.get(frame.from);
        if (link?.linkId !== frame.link) return;
        if (!this.authentic(frame.from, "answer", frame.link, frame.epoch, frame.sdp, frame.auth)) return;
        link.onAnswer(frame.sdp, frame.epoch, frame.relay ?? null);
        return;
      }
      case "relay": {
        const link = this.links.get(frame.from);
        if (link?.linkId === frame.link) link.onRelay(frame.epoch, frame.seq, frame.data);
        return;
      }
      default:
        return;
    }
  }

  /** A member rotated the room key: use it from now on, and close out the
   * devices it revoked (as the sidecar's channels do). */
  private rekeyed(roomKey: string, revoke: string[]): void {
    if (!this.options || roomKey === this.key) return;
    if (this.servedBy !== null && revoke.includes(this.servedBy)) {
      // The device this page came from was shut out: it serves the page's code, and
      // could read a key kept for its origin. Take nothing more from the room here.
      const servedBy = this.servedBy;
      this.stop();
      this.emit("mobile-worship:page_device_revoked", { peer_id: servedBy });
      return;
    }
    this.options = { ...this.options, room_key: roomKey };
    for (const peerId of revoke) {
      this.revoked.add(peerId);
      if (this.revoked.size > MAX_REVOKED_KEPT) this.revoked.delete(this.revoked.values().next().value ?? "");
      this.members = this.members.filter((m) => m.peer_id !== peerId);
      const link = this.links.get(peerId);
      if (link) this.onDown(link, "revoked", link.unacked());
    }
    this.emit("webrtc:room_key", { room_key: roomKey, reason: "rotated", revoked: revoke });
  }

  private authentic(
    from: string,
    kind: string,
    link: string,
    epoch: number,
    sdp: string,
    auth: string | null | undefined,
  ): boolean {
    const key = this.key;
    const me = this.me;
    if (key === null || !me) return true;
    return constantTimeEqual(auth ?? "", sdpAuth(key, kind, from, me.peer_id, link, epoch, sdp));
  }

  // ------------------------------------------------------------ channels

  private newLink(peerId: string, linkId: string, offerer: boolean): Link {
    const me = this.me;
    if (!me) throw new Error("not started");
    const identity = this.identity;
    if (!identity) throw new Error("not started");
    const other = this.members.find((m) => m.peer_id === peerId);
    const direct = me.webrtc !== false && other?.webrtc !== false;
    const setup = { me: me.peer_id, peerId, linkId, offerer, direct, iceServers: this.opts.iceServers ?? [], identity };
    const link = new Link(setup, {
      up: (l) => {
        this.onUp(l);
      },
      down: (l, reason, unacked) => {
        this.onDown(l, reason, unacked);
      },
      envelope: (l, envelope) => {
        this.onEnvelope(l, envelope);
      },
      idle: (l) => {
        if (this.links.get(l.peerId) === l) this.replica?.channelIdle(l.peerId);
      },
      signal: (l, kind, sdp, epoch, relay) => {
        const frame: Record<string, unknown> = { type: kind, from: me.peer_id, to: l.peerId, sdp, link: l.linkId, epoch };
        if (relay !== null) frame.relay = relay;
        if (this.key !== null) frame.auth = sdpAuth(this.key, kind, me.peer_id, l.peerId, l.linkId, epoch, sdp);
        return this.client?.send(frame) ?? false;
      },
      relay: (l, epoch, seq, box) =>
        this.client?.send({ type: "relay", from: me.peer_id, to: l.peerId, link: l.linkId, epoch, seq, data: box }) ?? false,
      hostBusy: () => this.opts.hostBusy?.() ?? false,
    });
    this.links.set(peerId, link);
    if (offerer) link.offer();
    return link;
  }

  private openLink(peerId: string): Link | undefined {
    const link = this.links.get(peerId);
    return link?.state === "connected" ? link : undefined;
  }

  private onUp(link: Link): void {
    if (this.links.get(link.peerId) !== link) return;
    this.attempts.delete(link.peerId);
    const peer = this.members.find((m) => m.peer_id === link.peerId);
    if (peer) this.emit("webrtc:connected", { peer: this.info(peer) });
    this.replica?.channelOpen(link.peerId); // before anything else goes on it
  }

  private onDown(link: Link, reason: DisconnectReason, unacked: string[]): void {
    if (this.links.get(link.peerId) !== link) return;
    const wasUp = link.state === "connected";
    this.links.delete(link.peerId);
    link.close(false);
    this.replica?.channelClosed(link.peerId);
    if (wasUp) this.emit("webrtc:disconnected", { peer_id: link.peerId, reason, unacknowledged: unacked });
    const peer = this.members.find((m) => m.peer_id === link.peerId);
    const me = this.me;
    if (this.stopped || reason === "left" || !peer || !me || !isOfferer(me.peer_id, peer.peer_id)) return;
    const attempt = (this.attempts.get(peer.peer_id) ?? 0) + 1;
    this.attempts.set(peer.peer_id, attempt);
    setTimeout(() => {
      const listed = this.members.find((m) => m.peer_id === peer.peer_id);
      if (this.stopped || !listed || !this.wants(listed) || this.links.has(peer.peer_id)) return;
      if (this.links.size < MAX_LINKS) this.newLink(peer.peer_id, randomHex(8), true);
    }, backoffMs(attempt));
  }

  private onEnvelope(link: Link, envelope: ControlEnvelope | StateEnvelope): void {
    if (this.links.get(link.peerId) !== link) return;
    if (envelope.type === "state") {
      this.replica?.receivedState(link.peerId, envelope);
      return;
    }
    this.replica?.receivedControl(link.peerId, envelope); // its webrtc:state comes first
    if (this.options?.echo && !envelope.echo) {
      const reply: ControlEnvelope = {
        type: "control",
        id: uuid4(),
        from: this.me?.peer_id ?? "",
        sent_at: Date.now(),
        payload: envelope.payload,
        echo: true,
        retain: null,
      };
      link.send(reply, reply.id).catch(() => undefined);
    }
    const message: MessageParams = {
      from: link.peerId,
      message_id: envelope.id,
      payload: envelope.payload,
      sent_at: envelope.sent_at,
    };
    this.emit("webrtc:message", message);
  }

  // ------------------------------------------------------------ sending

  async send(params: SendControlMessageParams): Promise<SendResult> {
    const me = this.me;
    if (!me || this.stopped) throw new RpcError(-32001, "Peer not started: call start_peer first");
    const size = valueSize(params.payload ?? null);
    if (size > MAX_PAYLOAD_BYTES) {
      throw new RpcError(-32004, `Payload too large: ${String(size)} bytes`, { size, limit: MAX_PAYLOAD_BYTES });
    }
    const connected = [...this.links.values()].filter((l) => l.state === "connected").map((l) => l.peerId);
    let targets: string[];
    if (params.to === null || params.to === undefined) targets = connected;
    else {
      const wanted = typeof params.to === "string" ? [params.to] : [...new Set(params.to)];
      const missing = wanted.filter((p) => !connected.includes(p));
      if (missing.length > 0) throw new RpcError(-32003, `Peer not connected: ${missing.join(", ")}`, { peer_ids: missing });
      targets = wanted;
    }
    if (params.display_class) {
      targets = targets.filter((id) => this.members.find((m) => m.peer_id === id)?.display_class === params.display_class);
    }
    const id = uuid4();
    const envelope: ControlEnvelope = {
      type: "control",
      id,
      from: me.peer_id,
      sent_at: Date.now(),
      payload: params.payload ?? null,
      echo: false,
      retain: null,
    };
    const retain = params.retain;
    if (retain !== null && retain !== undefined) {
      const why = keyProblem(retain);
      if (why !== null) throw new RpcError(-32602, "Invalid params", { field: "retain", reason: why });
      try {
        envelope.retain = this.replica?.write(retain, params.payload ?? null, size) ?? null;
      } catch (err) {
        if (!(err instanceof StateError)) throw err;
        throw new RpcError(-32004, `Retained state full: ${err.message}`, { field: "retain", reason: err.message });
      }
    }
    const going = targets.map((p) => this.links.get(p)?.send(envelope, id, SEND_WAIT_MS) ?? Promise.reject(new Error("closed")));
    if (retain !== null && retain !== undefined) this.replica?.spread(retain, new Set(targets));
    const outcomes = await Promise.allSettled(going);
    const sentTo = targets.filter((_, i) => outcomes[i]?.status === "fulfilled");
    const failed = targets.filter((_, i) => outcomes[i]?.status !== "fulfilled");
    if (failed.length > 0) {
      const stuck = outcomes.some((o) => o.status === "rejected" && String(o.reason).includes("not taking messages"));
      const detail = stuck ? "(channel closed or not taking messages)" : "(channel closed)";
      throw new RpcError(-32003, `Peer not connected: ${failed.join(", ")} ${detail}`, { peer_ids: failed, sent_to: sentTo, message_id: id });
    }
    return { message_id: id, sent_to: sentTo };
  }

  // ------------------------------------------------------------ what we show

  private info(peer: SignalPeer): PeerInfo {
    const me = this.me;
    const link = this.links.get(peer.peer_id);
    return {
      peer_id: peer.peer_id,
      name: peer.name,
      peer_type: peer.peer_type,
      display_class: peer.display_class,
      started_at: peer.started_at,
      is_leader: peer.peer_id === this.leaderId,
      connection_state: peer.peer_id === me?.peer_id ? "self" : (link?.state ?? "new"),
      relayed: false,
      via: link?.via ?? "direct",
    };
  }

  /** This page's own PeerInfo, once started. */
  selfInfo(): PeerInfo | null {
    return this.me ? this.info(this.me) : null;
  }

  connectedPeers(): PeerInfo[] {
    return this.members.filter((m) => this.links.get(m.peer_id)?.state === "connected").map((m) => this.info(m));
  }

  leaderStatus(): LeaderStatus {
    const leader = this.members.find((m) => m.peer_id === this.leaderId) ?? null;
    const first = leader?.addresses?.[0];
    const url = leader && first ? `ws://${first}:${String(leader.port ?? 0)}` : null;
    return {
      state: this.stopped ? "idle" : this.leaderId ? "follower" : "electing",
      leader_id: this.leaderId,
      is_leader: false,
      term: this.term,
      leader: leader ? this.info(leader) : null,
      signaling_url: url,
      addresses: [],
      keyed: this.key !== null,
      found_by: ["rendezvous"],
      room_addresses: [],
      rendezvous: [],
      pairing: null,
    };
  }
}

