/**
 * CPace (draft-irtf-cfrg-cpace), suite CPACE-X25519-SHA512, initiator-responder
 * with explicit mutual confirmation: the same computation as the sidecar's
 * `cpace` package (sidecar/core/pairing.py), step for step, checked against the
 * vectors both test suites share (tests/vectors/pairing.json).
 *
 * Built on @noble/curves (X25519) and @noble/hashes (SHA-512, HMAC): plain
 * JavaScript, so it runs where `crypto.subtle` does not (a page served over
 * http from a LAN address is not a secure context). The Elligator 2 map is
 * BigInt arithmetic and not constant-time; a pairing code is short-lived and
 * its tries are bounded by the member, which is the setting this is for.
 */
import { x25519 } from "@noble/curves/ed25519.js";
import { hmac } from "@noble/hashes/hmac.js";
import { sha512 } from "@noble/hashes/sha2.js";

const Q = 2n ** 255n - 19n;
const A = 486662n;
const Z = 2n;
const DSI = new TextEncoder().encode("CPace255");
const DSI_ISK = new TextEncoder().encode("CPace255_ISK");
const MAC_LABEL = new TextEncoder().encode("CPaceMac");
const SHA512_BLOCK_BYTES = 128;

export type Role = "initiator" | "responder";

export class CPaceError extends Error {}

function concat(...parts: Uint8Array[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.length;
  }
  return out;
}

/** LEB128 length, then the bytes. */
export function prependLen(data: Uint8Array): Uint8Array {
  const len: number[] = [];
  let n = data.length;
  for (;;) {
    len.push(n & 0x7f);
    n >>>= 7;
    if (n === 0) break;
    len[len.length - 1] = (len[len.length - 1] ?? 0) | 0x80;
  }
  return concat(Uint8Array.from(len), data);
}

export function lvCat(...parts: Uint8Array[]): Uint8Array {
  return concat(...parts.map(prependLen));
}

function mod(x: bigint): bigint {
  const r = x % Q;
  return r < 0n ? r + Q : r;
}

function pow(base: bigint, exp: bigint): bigint {
  let result = 1n;
  let b = mod(base);
  let e = exp;
  while (e > 0n) {
    if (e & 1n) result = (result * b) % Q;
    b = (b * b) % Q;
    e >>= 1n;
  }
  return result;
}

function fromLE(bytes: Uint8Array): bigint {
  let x = 0n;
  for (let i = bytes.length - 1; i >= 0; i--) x = (x << 8n) | BigInt(bytes[i] ?? 0);
  return x;
}

function toLE32(x: bigint): Uint8Array {
  const out = new Uint8Array(32);
  let v = x;
  for (let i = 0; i < 32; i++) {
    out[i] = Number(v & 0xffn);
    v >>= 8n;
  }
  return out;
}

/** Elligator 2 on Curve25519 (B = 1, Z = 2), as the draft's G_X25519 maps. */
function elligator2(r: bigint): Uint8Array {
  const rr = mod(r);
  const v = mod(-A * pow(mod(1n + Z * rr * rr), Q - 2n));
  const eps = pow(mod(v * v * v + A * v * v + v), (Q - 1n) / 2n);
  const x = mod(eps * v - mod(1n - eps) * A * pow(2n, Q - 2n));
  return toLE32(x);
}

function generatorString(prs: Uint8Array, ci: Uint8Array, sid: Uint8Array): Uint8Array {
  const zpad = Math.max(0, SHA512_BLOCK_BYTES - 1 - prependLen(prs).length - prependLen(DSI).length);
  return lvCat(DSI, prs, new Uint8Array(zpad), ci, sid);
}

/** G: the u-coordinate that the password, channel and session map to. */
export function calculateGenerator(prs: Uint8Array, ci: Uint8Array, sid: Uint8Array): Uint8Array {
  const hash = sha512(generatorString(prs, ci, sid)).slice(0, 32);
  hash[31] = (hash[31] ?? 0) & 0x7f; // decodeUCoordinate: 255 bits
  return elligator2(fromLE(hash));
}

function scalarMultVfy(scalar: Uint8Array, point: Uint8Array): Uint8Array {
  let out: Uint8Array;
  try {
    out = x25519.scalarMult(scalar, point);
  } catch {
    throw new CPaceError("the share encodes a low-order point");
  }
  if (out.every((b) => b === 0)) throw new CPaceError("the share encodes a low-order point");
  return out;
}

function equal(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false;
  let diff = 0;
  for (let i = 0; i < a.length; i++) diff |= (a[i] ?? 0) ^ (b[i] ?? 0);
  return diff === 0;
}

/** One side of one CPace run. */
export class CPace {
  readonly publicShare: Uint8Array;
  private scalar: Uint8Array | null;
  private sides: [[Uint8Array, Uint8Array], [Uint8Array, Uint8Array]] | null = null;
  private macKey: Uint8Array | null = null;
  private isKey: Uint8Array | null = null;

  constructor(
    private readonly role: Role,
    prs: Uint8Array,
    private readonly sid: Uint8Array,
    ci: Uint8Array,
    scalar?: Uint8Array,
    private readonly ad: Uint8Array = new Uint8Array(0),
  ) {
    this.scalar = scalar ?? x25519.utils.randomSecretKey();
    this.publicShare = scalarMultVfy(this.scalar, calculateGenerator(prs, ci, sid));
  }

  /** The peer's share (once): derives the ISK and the confirmation key. */
  derive(peerShare: Uint8Array, peerAd: Uint8Array = new Uint8Array(0)): void {
    if (this.scalar === null) throw new CPaceError("derive() may only be called once");
    const scalar = this.scalar;
    this.scalar = null;
    if (peerShare.length !== 32) throw new CPaceError("a share is 32 bytes");
    const k = scalarMultVfy(scalar, peerShare);
    const own: [Uint8Array, Uint8Array] = [this.publicShare, this.ad];
    const theirs: [Uint8Array, Uint8Array] = [peerShare, peerAd];
    this.sides = this.role === "initiator" ? [own, theirs] : [theirs, own];
    const transcript = concat(lvCat(...this.sides[0]), lvCat(...this.sides[1]));
    this.isKey = sha512(concat(lvCat(DSI_ISK, this.sid, k), transcript));
    this.macKey = sha512(concat(MAC_LABEL, this.sid, this.isKey));
  }

  get isk(): Uint8Array {
    if (this.isKey === null) throw new CPaceError("derive() first");
    return this.isKey;
  }

  /** This side's confirmation tag. */
  tag(): Uint8Array {
    return this.mac(true);
  }

  /** Whether the peer's tag proves it used the same password. */
  verify(peerTag: Uint8Array): boolean {
    if (this.sides !== null && equal(lvCat(...this.sides[0]), lvCat(...this.sides[1]))) return false;
    return equal(peerTag, this.mac(false));
  }

  private mac(own: boolean): Uint8Array {
    if (this.sides === null || this.macKey === null) throw new CPaceError("derive() first");
    const index = own === (this.role === "initiator") ? 0 : 1;
    return hmac(sha512, this.macKey, lvCat(...this.sides[index]));
  }
}
