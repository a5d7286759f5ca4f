/**
 * End-to-end sealing of a relayed channel (sidecar/core/relayseal.py, the same
 * rules; the vectors in tests/vectors/wire.json "relay_seal" decide both).
 *
 * The offer and the answer of a relay transport each carry a share signed by
 * the sender's identity key; the two peers' keys come from those shares alone,
 * so the leader that carries the relayed frames can neither read nor alter
 * them, nor put its own share in. A frame opens only with a number above the
 * last one opened (a gap left by a dropped frame is fine; a replay is not).
 */
import { chacha20poly1305 } from "@noble/ciphers/chacha.js";
import { ed25519 } from "@noble/curves/ed25519.js";
import { hmac } from "@noble/hashes/hmac.js";
import { sha256 } from "@noble/hashes/sha2.js";

import type { RelayShare } from "../../generated/sidecar-types";
import { b64url, unb64url } from "../../pairing";
import { Ephemeral, type Identity, peerIdOf } from "./crypto";

const utf8 = new TextEncoder();
const TO_ANSWERER = utf8.encode("mw-relay|o");
const TO_OFFERER = utf8.encode("mw-relay|a");

export type ShareKind = "offer" | "answer";

/** What a peer signs for the share of its offer (`offerShare` "") or answer. */
export function shareStatement(kind: ShareKind, from: string, to: string, link: string, epoch: number, share: string, offerShare: string): Uint8Array {
  return utf8.encode(`mw-relay|${kind}|${from}|${to}|${link}|${String(epoch)}|${share}|${offerShare}`);
}

/** [offerer→answerer key, answerer→offerer key] of one relay transport. */
export function relayKeys(
  link: string,
  epoch: number,
  offerer: string,
  answerer: string,
  offerShare: string,
  answerShare: string,
  shared: Uint8Array,
): [Uint8Array, Uint8Array] {
  const transcript = utf8.encode(["mw-relay-v4", link, String(epoch), offerer, answerer, offerShare, answerShare].join("|"));
  const master = hmac(sha256, shared, transcript);
  return [hmac(sha256, master, utf8.encode("o")), hmac(sha256, master, utf8.encode("a"))];
}

function nonce(seq: number): Uint8Array {
  const n = new Uint8Array(12);
  new DataView(n.buffer).setBigUint64(4, BigInt(seq));
  return n;
}

function verified(publicKey: string, statement: Uint8Array, signature: string): boolean {
  try {
    const key = unb64url(publicKey);
    const sig = unb64url(signature);
    return key.length === 32 && sig.length === 64 && ed25519.verify(sig, statement, key);
  } catch {
    return false;
  }
}

/** One side of one relay transport: its share, then the keys of its frames. */
export class RelaySeal {
  private readonly ephemeral: Ephemeral;
  private theirs: string | null = null;
  private sending: Uint8Array | null = null;
  private receiving: Uint8Array | null = null;
  private sent = 0;
  private received = 0;

  constructor(
    private readonly identity: Identity,
    readonly o: { peer: string; link: string; epoch: number; offerer: boolean; ephemeral?: Ephemeral },
  ) {
    this.ephemeral = o.ephemeral ?? new Ephemeral();
  }

  get epoch(): number {
    return this.o.epoch;
  }

  /** Both shares are known: frames can be sealed and opened. */
  get ready(): boolean {
    return this.sending !== null;
  }

  /** This side's share for its offer or answer (the same every time). */
  mine(): RelayShare {
    const kind: ShareKind = this.o.offerer ? "offer" : "answer";
    const share = this.ephemeral.share;
    const over = this.o.offerer ? "" : (this.theirs ?? "");
    const statement = shareStatement(kind, this.identity.peerId, this.o.peer, this.o.link, this.o.epoch, share, over);
    return { share, identity: this.identity.publicKey, signature: this.identity.sign(statement) };
  }

  /** The other side's share, checked (the peer's key, signed for this
   * transport); false leaves the seal as it was. */
  accept(theirs: RelayShare): boolean {
    if (this.theirs !== null) return theirs.share === this.theirs;
    const me = this.identity.peerId;
    const peer = this.o.peer;
    const mine = this.ephemeral.share;
    const [kind, offerer, answerer, offerShare, answerShare]: [ShareKind, string, string, string, string] = this.o.offerer
      ? ["answer", me, peer, mine, theirs.share]
      : ["offer", peer, me, theirs.share, mine];
    const statement = shareStatement(kind, peer, me, this.o.link, this.o.epoch, theirs.share, this.o.offerer ? offerShare : "");
    if (peerIdOf(theirs.identity) !== peer || !verified(theirs.identity, statement, theirs.signature)) return false;
    let shared: Uint8Array;
    try {
      shared = this.ephemeral.agree(theirs.share);
    } catch {
      return false;
    }
    const [toAnswerer, toOfferer] = relayKeys(this.o.link, this.o.epoch, offerer, answerer, offerShare, answerShare, shared);
    this.theirs = theirs.share;
    [this.sending, this.receiving] = this.o.offerer ? [toAnswerer, toOfferer] : [toOfferer, toAnswerer];
    return true;
  }

  /** [seq, box] of the next frame sent; throws before `accept`. */
  seal(text: string): [number, string] {
    if (this.sending === null) throw new Error("the other side's share is not known yet");
    this.sent += 1;
    const aad = this.o.offerer ? TO_ANSWERER : TO_OFFERER;
    return [this.sent, b64url(chacha20poly1305(this.sending, nonce(this.sent), aad).encrypt(utf8.encode(text)))];
  }

  /** A received frame's text: intact, the peer's, numbered above the last opened. */
  open(seq: number, box: string): string | null {
    if (this.receiving === null || !Number.isSafeInteger(seq) || seq <= this.received) return null;
    const aad = this.o.offerer ? TO_OFFERER : TO_ANSWERER;
    let text: string;
    try {
      const plain = chacha20poly1305(this.receiving, nonce(seq), aad).decrypt(unb64url(box));
      text = new TextDecoder("utf-8", { fatal: true }).decode(plain);
    } catch {
      return null;
    }
    this.received = seq;
    return text;
  }
}
