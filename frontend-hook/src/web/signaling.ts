/**
 * A web peer's WebSocket to a room's signaling server (docs/protocol.md,
 * "Signaling"): `query` any peer for the room, pair with a member's open
 * window (a code or a pairing link's token), `register` at the leader (with
 * this page's identity; sealed under the room key in a keyed room), then the
 * shell of the follower core (./core/follower.ts: heartbeats every 2 s, when
 * the leader is lost, which frames count) with one timer.
 */
import type {
  PeerRecord,
  Registered,
  SignalMessage,
  SignalPeer,
} from "../generated/sidecar-types";
import { type Box, Ephemeral, Identity, openSession, randomHex, registrationStatement, sessionBinding } from "./core/crypto";
import { FollowerCore, type Delivered } from "./core/follower";
import { Initiator, PairingError } from "../pairing";

export const PROTOCOL_VERSION = 4;
const JOIN_TIMEOUT_MS = 3000;
/** A pairing step: the member runs one X25519 exchange (a slow TV's too). */
const PAIR_TIMEOUT_MS = 5000;

export class SignalingError extends Error {
  constructor(
    readonly code: string,
    message: string,
  ) {
    super(`${code}: ${message}`);
  }
}

/** A WebSocket that yields frames one by one. */
class Socket {
  private readonly queue: SignalMessage[] = [];
  private waiting: ((frame: SignalMessage | null) => void) | null = null;
  closed = false;
  onFrame: ((frame: SignalMessage) => void) | null = null;
  onClose: ((reason: string) => void) | null = null;

  private constructor(readonly ws: WebSocket) {
    ws.onmessage = (e: MessageEvent<unknown>) => {
      if (typeof e.data !== "string") return;
      let frame: SignalMessage;
      try {
        frame = JSON.parse(e.data) as SignalMessage;
      } catch {
        return;
      }
      if (this.onFrame) this.onFrame(frame);
      else if (this.waiting) {
        const w = this.waiting;
        this.waiting = null;
        w(frame);
      } else this.queue.push(frame);
    };
    ws.onclose = (e: CloseEvent) => {
      this.closed = true;
      const w = this.waiting;
      this.waiting = null;
      w?.(null);
      this.onClose?.(`closed (${String(e.code)}${e.reason ? ` ${e.reason}` : ""})`);
    };
  }

  static open(url: string, timeoutMs: number): Promise<Socket> {
    return new Promise((resolve, reject) => {
      const ws = new WebSocket(url);
      const timer = setTimeout(() => {
        ws.close();
        reject(new SignalingError("timeout", `no connection to ${url}`));
      }, timeoutMs);
      ws.onopen = () => {
        clearTimeout(timer);
        resolve(new Socket(ws));
      };
      ws.onerror = () => {
        clearTimeout(timer);
        reject(new SignalingError("refused", `cannot connect to ${url}`));
      };
    });
  }

  next(timeoutMs: number): Promise<SignalMessage> {
    const queued = this.queue.shift();
    if (queued) return Promise.resolve(queued);
    if (this.closed) return Promise.reject(new SignalingError("refused", "closed"));
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.waiting = null;
        reject(new SignalingError("timeout", "no answer"));
      }, timeoutMs);
      this.waiting = (frame) => {
        clearTimeout(timer);
        if (frame === null) reject(new SignalingError("refused", "closed"));
        else resolve(frame);
      };
    });
  }

  send(text: string): void {
    if (this.ws.readyState === WebSocket.OPEN) this.ws.send(text);
  }

  close(): void {
    this.closed = true;
    this.ws.close();
  }
}

/** Seals and opens frames of one session (keyed rooms: encrypted under keys of an
 * ephemeral exchange with the server, see sidecar/core/signaling.py
 * `ClientSession`); plain otherwise. Throws when the challenge's share is not one. */
class Session {
  private readonly box: Box | null;
  private readonly mine = new Ephemeral();
  private first = true;
  /** This session, as a registration signed in it names it ("" in an open room). */
  readonly binding: string;

  constructor(
    roomKey: string | null,
    challenge: { nonce: string; share: string },
    room: string,
    private readonly nonce = randomHex(16),
  ) {
    this.binding = roomKey === null ? "" : sessionBinding(this.nonce, challenge.share, this.mine.share);
    this.box =
      roomKey === null
        ? null
        : openSession(roomKey, room, {
            side: "client",
            mine: this.mine,
            serverNonce: challenge.nonce,
            clientNonce: this.nonce,
            serverShare: challenge.share,
            clientShare: this.mine.share,
          });
  }

  get keyed(): boolean {
    return this.box !== null;
  }

  frame(msg: object): string {
    const text = JSON.stringify(msg);
    if (this.box === null) return text;
    const [seq, box] = this.box.seal(text);
    const sealed: Record<string, unknown> = { type: "sealed", seq, box };
    if (this.first) {
      sealed.nonce = this.nonce;
      sealed.share = this.mine.share;
    }
    this.first = false;
    return JSON.stringify(sealed);
  }

  /** The frame inside a sealed one (null: not sealed with the session's key, or out of sequence). */
  open(frame: SignalMessage): SignalMessage | null {
    if (this.box === null) return frame;
    if (frame.type !== "sealed") return null;
    const text = this.box.open(frame.seq, frame.box);
    if (text === null) return null;
    try {
      const inner = JSON.parse(text) as SignalMessage;
      return inner.type === "sealed" ? null : inner;
    } catch {
      return null;
    }
  }
}

function session(roomKey: string | null, challenge: SignalMessage, room: string): Session {
  if (challenge.type !== "challenge") throw new SignalingError("protocol", `expected a challenge, got ${challenge.type}`);
  try {
    return new Session(roomKey, challenge, room);
  } catch {
    throw new SignalingError("protocol", "the challenge's share is not one");
  }
}

function refusal(frame: SignalMessage): SignalingError | null {
  return frame.type === "error" ? new SignalingError(frame.code, frame.message) : null;
}

/** What the peer at `url` knows of `room`: its record, then its leader's. */
export async function queryRoom(url: string, room: string, roomKey: string | null): Promise<PeerRecord[]> {
  const socket = await Socket.open(url, JOIN_TIMEOUT_MS);
  try {
    const challenge = await socket.next(JOIN_TIMEOUT_MS);
    const sealed = session(roomKey, challenge, room);
    socket.send(sealed.frame({ type: "query", room, v: PROTOCOL_VERSION }));
    const raw = await socket.next(JOIN_TIMEOUT_MS);
    const refused = refusal(raw);
    if (refused) throw refused;
    const answer = sealed.open(raw);
    if (answer?.type !== "room_info") throw new SignalingError("forbidden", "the answer is not sealed with the room's key");
    return answer.records.filter((r) => r.room === room);
  } finally {
    socket.close();
  }
}

/** What a device pairs with: the six digits a member shows, or its pairing link's token. */
export interface PairingSecret {
  kind: "code" | "token";
  value: string;
}

/** The room key, from the member at `url` whose pairing window is open (docs/protocol.md,
 * "Pairing"); throws SignalingError: `wrong_code`, `token_spent`, `too_many_tries`,
 * `pairing_closed`, `pairing_busy`, `protocol`, `refused`, `timeout`. */
export async function pairWith(url: string, room: string, secret: PairingSecret): Promise<string> {
  const socket = await Socket.open(url, JOIN_TIMEOUT_MS);
  try {
    const challenge = await socket.next(JOIN_TIMEOUT_MS);
    if (challenge.type !== "challenge") throw new SignalingError("protocol", `expected a challenge, got ${challenge.type}`);
    const nonce = randomHex(16);
    const me = new Initiator(secret.value, room, challenge.nonce, nonce);
    socket.send(JSON.stringify({ type: "pair_hello", room, share: me.share, nonce, v: PROTOCOL_VERSION, secret: secret.kind }));
    const reply = await socket.next(PAIR_TIMEOUT_MS);
    const refusedHello = refusal(reply);
    if (refusedHello) throw refusedHello;
    if (reply.type !== "pair_reply") throw new SignalingError("protocol", `expected pair_reply, got ${reply.type}`);
    let tag: string;
    try {
      tag = me.reply(reply.share, reply.tag);
    } catch (err) {
      if (err instanceof PairingError) throw new SignalingError(err.code, err.message);
      throw err;
    }
    socket.send(JSON.stringify({ type: "pair_confirm", tag }));
    const sealed = await socket.next(PAIR_TIMEOUT_MS);
    const refusedConfirm = refusal(sealed);
    if (refusedConfirm) throw refusedConfirm;
    if (sealed.type !== "pair_key") throw new SignalingError("protocol", `expected pair_key, got ${sealed.type}`);
    try {
      return me.roomKey(sealed.sealed);
    } catch {
      throw new SignalingError("protocol", "the sealed room key does not open");
    }
  } finally {
    socket.close();
  }
}

export interface SignalingHandlers {
  message(frame: Delivered): void;
  lost(reason: string): void;
}

/** A registration at the leader, kept alive by heartbeats until closed or lost. */
export class SignalingClient {
  private socket: Socket | null = null;
  private session: Session | null = null;
  private core: FollowerCore | null = null;
  private timer: ReturnType<typeof setTimeout> | null = null;
  private done = false;

  constructor(private readonly handlers: SignalingHandlers) {}

  get term(): number {
    return this.core?.term ?? 0;
  }

  async join(
    url: string,
    me: SignalPeer,
    room: string,
    roomKey: string | null,
    identity: Identity,
    seq: number,
  ): Promise<Registered> {
    const socket = await Socket.open(url, JOIN_TIMEOUT_MS);
    this.socket = socket;
    try {
      const challenge = await socket.next(JOIN_TIMEOUT_MS);
      const sealed = session(roomKey, challenge, room);
      this.session = sealed;
      if (challenge.type !== "challenge") throw new SignalingError("protocol", "no challenge");
      const signature = identity.sign(registrationStatement(challenge.nonce, me.peer_id, room, seq, sealed.binding));
      socket.send(
        sealed.frame({
          type: "register",
          peer: me,
          room,
          identity: identity.publicKey,
          signature,
          v: PROTOCOL_VERSION,
          seq,
        }),
      );
      for (;;) {
        const raw = await socket.next(JOIN_TIMEOUT_MS);
        const refused = refusal(raw);
        if (refused) throw refused;
        const frame = sealed.open(raw);
        if (frame === null) throw new SignalingError("unproven_leader", "the leader cannot prove the room key");
        if (frame.type === "registered") {
          this.listen(socket, sealed, new FollowerCore({ term: frame.term, now: performance.now(), keyed: sealed.keyed }));
          return frame;
        }
      }
    } catch (err) {
      socket.close();
      throw err;
    }
  }

  private listen(socket: Socket, session: Session, core: FollowerCore): void {
    this.core = core;
    socket.onFrame = (raw) => {
      const frame = session.open(raw);
      if (frame === null) core.unsealed(raw.type === "error", performance.now());
      else core.received(frame, performance.now());
      this.carryOut(core);
    };
    socket.onClose = (reason) => {
      this.lose(`leader ${reason}`);
    };
    this.arm(core);
  }

  private carryOut(core: FollowerCore): void {
    for (const o of core.take()) {
      if (o.kind === "deliver") this.handlers.message(o.frame);
      else if (o.kind === "beat") this.send({ type: "heartbeat", seq: o.seq, term: o.term });
      else if (o.reason === "unsealed") this.lose("a frame not sealed with the room key");
      else this.lose(`no heartbeat ack for ${(o.silentMs / 1000).toFixed(1)} s`);
    }
    this.arm(core);
  }

  private arm(core: FollowerCore): void {
    if (this.timer !== null) clearTimeout(this.timer);
    this.timer = null;
    const deadline = core.nextDeadline();
    if (deadline === null || this.done) return;
    this.timer = setTimeout(
      () => {
        this.timer = null;
        core.tick(performance.now());
        this.carryOut(core);
      },
      Math.max(0, deadline - performance.now()),
    );
  }

  get connected(): boolean {
    return this.socket !== null && !this.socket.closed && !this.done;
  }

  send(frame: object): boolean {
    if (!this.connected || this.session === null || this.socket === null) return false;
    this.socket.send(this.session.frame(frame));
    return true;
  }

  private lose(reason: string): void {
    if (this.done) return;
    this.done = true;
    this.stop();
    this.socket?.close();
    this.handlers.lost(reason);
  }

  close(leave: boolean, peerId: string): void {
    if (leave && this.connected) this.send({ type: "leave", peer_id: peerId });
    this.done = true;
    this.stop();
    this.socket?.close();
  }

  private stop(): void {
    if (this.timer !== null) clearTimeout(this.timer);
    this.timer = null;
  }
}
