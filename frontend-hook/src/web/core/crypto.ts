/**
 * The cryptography a web peer needs, as the sidecar does it (sidecar/core/identity.py,
 * sidecar/core/roomkey.py), on @noble/*: no `crypto.subtle`, which a page served over
 * http from a LAN address does not have.
 */
import { ed25519 } from "@noble/curves/ed25519.js";
import { hmac } from "@noble/hashes/hmac.js";
import { sha256 } from "@noble/hashes/sha2.js";

import { b64url } from "../../pairing";

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

export function registrationStatement(nonce: string, peerId: string, room: string, seq: number): Uint8Array {
  return utf8.encode(`mw-register|${nonce}|${peerId}|${room}|${String(seq)}`);
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

export function sessionKey(roomKey: string, serverNonce: string, clientNonce: string, room: string): Uint8Array {
  return hmac(sha256, utf8.encode(roomKey), utf8.encode(`mw-session|${serverNonce}|${clientNonce}|${room}`));
}

/** One side of a sealed signaling session (sidecar/core/roomkey.py `Sealer`). */
export class Sealer {
  private sent = 0;
  private received = 0;

  constructor(
    private readonly key: Uint8Array,
    private readonly sending: "c" | "s",
    private readonly receiving: "c" | "s",
  ) {}

  seal(body: string): [number, string] {
    this.sent += 1;
    return [this.sent, this.mac(this.sending, this.sent, body)];
  }

  open(seq: number, body: string, tag: string): boolean {
    if (seq !== this.received + 1 || tag !== this.mac(this.receiving, seq, body)) return false;
    this.received = seq;
    return true;
  }

  private mac(direction: string, seq: number, body: string): string {
    return mac(this.key, utf8.encode(`${direction}|${String(seq)}|${body}`));
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
  return mac(utf8.encode(roomKey), utf8.encode(`mw-sdp|${kind}|${from}|${to}|${link}|${String(epoch)}|${sdp}`));
}
