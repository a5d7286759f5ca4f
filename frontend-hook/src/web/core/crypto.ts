/**
 * The cryptography a web peer needs, as the sidecar does it (sidecar/core/identity.py,
 * sidecar/core/roomkey.py), on @noble/*: no `crypto.subtle`, which a page served over
 * http from a LAN address does not have.
 */
import { chacha20poly1305 } from "@noble/ciphers/chacha.js";
import { ed25519, x25519 } from "@noble/curves/ed25519.js";
import { hmac } from "@noble/hashes/hmac.js";
import { scrypt } from "@noble/hashes/scrypt.js";
import { sha256 } from "@noble/hashes/sha2.js";

import { b64url, unb64url } from "../../pairing";

const utf8 = new TextEncoder();

export function hex(bytes: Uint8Array): string {
  return Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
}

/** A random UUID (v4): `crypto.randomUUID` exists only in secure contexts, this does not. */
export function uuid4(): string {
  const d = crypto.getRandomValues(new Uint8Array(16));
  d[6] = ((d[6] ?? 0) & 0x0f) | 0x40;
  d[8] = ((d[8] ?? 0) & 0x3f) | 0x80;
  const h = hex(d);
  return `${h.slice(0, 8)}-${h.slice(8, 12)}-${h.slice(12, 16)}-${h.slice(16, 20)}-${h.slice(20)}`;
}

export function randomHex(bytes: number): string {
  return hex(crypto.getRandomValues(new Uint8Array(bytes)));
}

/** The peer id a public key (base64url) stands for: a v4-shaped UUID of its SHA-256. */
export function peerIdOf(publicKey: string): string {
  const d = sha256(utf8.encode(publicKey)).slice(0, 16);
  d[6] = ((d[6] ?? 0) & 0x0f) | 0x40;
  d[8] = ((d[8] ?? 0) & 0x3f) | 0x80;
  const h = hex(d);
  return `${h.slice(0, 8)}-${h.slice(8, 12)}-${h.slice(12, 16)}-${h.slice(16, 20)}-${h.slice(20)}`;
}

/** What a registering peer signs (sidecar/core/identity.py): the challenge, what it
 * claims and, in a keyed room, the session it registers in (`sessionBinding`). */
export function registrationStatement(nonce: string, peerId: string, room: string, seq: number, session = ""): Uint8Array {
  return utf8.encode(`mw-register|${nonce}|${peerId}|${room}|${String(seq)}|${session}`);
}

/** One session as the registration signed in it names it (sidecar/core/roomkey.py). */
export function sessionBinding(clientNonce: string, serverShare: string, clientShare: string): string {
  return `${clientNonce}|${serverShare}|${clientShare}`;
}

/** This page's key pair: its peer id is the key's hash, new at every start. */
export class Identity {
  readonly publicKey: string;
  readonly peerId: string;
  private readonly secret: Uint8Array;

  constructor(secret?: Uint8Array) {
    this.secret = secret ?? ed25519.utils.randomSecretKey();
    this.publicKey = b64url(ed25519.getPublicKey(this.secret));
    this.peerId = peerIdOf(this.publicKey);
  }

  sign(statement: Uint8Array): string {
    return b64url(ed25519.sign(statement, this.secret));
  }
}

function mac(key: Uint8Array, text: Uint8Array): string {
  return hex(hmac(sha256, key, text)).slice(0, 32);
}

/** Whether two strings are equal, in a time that does not depend on where they differ. */
export function constantTimeEqual(a: string, b: string): boolean {
  const x = utf8.encode(a);
  const y = utf8.encode(b);
  let diff = x.length ^ y.length;
  for (let i = 0; i < Math.max(x.length, y.length); i++) diff |= (x[i] ?? 0) ^ (y[i] ?? 0);
  return diff === 0;
}

const SCRYPT = { N: 2 ** 14, r: 8, p: 1, dkLen: 32 };
const SCRYPT_SALT = "mobile-worship room key v4";
const secrets = new Map<string, Uint8Array>();

/** The stretched room key (sidecar/core/roomkey.py `room_secret`): every MAC and
 * session of the room is keyed by it. Computed once per key (a few hundred ms). */
export function roomSecret(roomKey: string): Uint8Array {
  let secret = secrets.get(roomKey);
  if (secret === undefined) {
    secret = scrypt(utf8.encode(roomKey), utf8.encode(SCRYPT_SALT), SCRYPT);
    if (secrets.size >= 8) secrets.clear();
    secrets.set(roomKey, secret);
  }
  return secret;
}

/** One side's X25519 key pair for one session (`secret`: for test vectors). */
export class Ephemeral {
  readonly share: string;
  private readonly secret: Uint8Array;

  constructor(secret?: Uint8Array) {
    this.secret = secret ?? x25519.utils.randomSecretKey();
    this.share = b64url(x25519.getPublicKey(this.secret));
  }

  /** The shared secret with the other side's share; throws when it is not one. */
  agree(share: string): Uint8Array {
    const raw = unb64url(share);
    if (raw.length !== 32) throw new Error("a share is 32 bytes");
    return x25519.getSharedSecret(this.secret, raw);
  }
}

/** [client→server key, server→client key] of one session (see roomkey.py). */
export function sessionKeys(
  roomKey: string,
  room: string,
  serverNonce: string,
  clientNonce: string,
  serverShare: string,
  clientShare: string,
  shared: Uint8Array,
): [Uint8Array, Uint8Array] {
  const transcript = utf8.encode(["mw-session-v4", room, serverNonce, clientNonce, serverShare, clientShare].join("|") + "|");
  const input = new Uint8Array(transcript.length + shared.length);
  input.set(transcript);
  input.set(shared, transcript.length);
  const master = hmac(sha256, roomSecret(roomKey), input);
  return [hmac(sha256, master, utf8.encode("c")), hmac(sha256, master, utf8.encode("s"))];
}

export type Side = "client" | "server";

/** This side's Box for a session; throws when the other share is not one. */
export function openSession(
  roomKey: string,
  room: string,
  o: { side: Side; mine: Ephemeral; serverNonce: string; clientNonce: string; serverShare: string; clientShare: string },
): Box {
  const theirs = o.side === "server" ? o.clientShare : o.serverShare;
  const [toServer, toClient] = sessionKeys(roomKey, room, o.serverNonce, o.clientNonce, o.serverShare, o.clientShare, o.mine.agree(theirs));
  return o.side === "client" ? new Box(toServer, toClient, "c") : new Box(toClient, toServer, "s");
}

function nonce(seq: number): Uint8Array {
  const n = new Uint8Array(12);
  new DataView(n.buffer).setBigUint64(4, BigInt(seq));
  return n;
}

/** One side of a sealed session (sidecar/core/roomkey.py `Box`): frames encrypted
 * and authenticated (ChaCha20-Poly1305) under the key of their direction, numbered. */
export class Box {
  private sent = 0;
  private received = 0;
  private readonly outbound: Uint8Array;
  private readonly inbound: Uint8Array;

  constructor(
    private readonly sending: Uint8Array,
    private readonly receiving: Uint8Array,
    direction: "c" | "s",
  ) {
    this.outbound = utf8.encode(`mw-sealed|${direction}`);
    this.inbound = utf8.encode(`mw-sealed|${direction === "c" ? "s" : "c"}`);
  }

  seal(text: string): [number, string] {
    this.sent += 1;
    const box = chacha20poly1305(this.sending, nonce(this.sent), this.outbound).encrypt(utf8.encode(text));
    return [this.sent, b64url(box)];
  }

  /** The text of the next frame, or null when it is not the next one or not intact. */
  open(seq: number, box: string): string | null {
    if (seq !== this.received + 1) return null;
    let text: string;
    try {
      const plain = chacha20poly1305(this.receiving, nonce(seq), this.inbound).decrypt(unb64url(box));
      text = new TextDecoder("utf-8", { fatal: true }).decode(plain);
    } catch {
      return null;
    }
    this.received = seq;
    return text;
  }
}

export function sdpAuth(
  roomKey: string,
  kind: string,
  from: string,
  to: string,
  link: string,
  epoch: number,
  sdp: string,
): string {
  return mac(roomSecret(roomKey), utf8.encode(`mw-sdp|${kind}|${from}|${to}|${link}|${String(epoch)}|${sdp}`));
}
