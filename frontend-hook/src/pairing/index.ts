/**
 * Pairing a device into a keyed room with a six-digit code: the new device's
 * side of the exchange (docs/protocol.md, "Pairing"; sidecar/core/pairing.py is the
 * member's). Pure: the caller carries the frames over the member's signaling
 * WebSocket (challenge in, `pair_hello` out, `pair_reply` in, `pair_confirm`
 * out, `pair_key` in).
 */
import { chacha20poly1305 } from "@noble/ciphers/chacha.js";
import { sha512 } from "@noble/hashes/sha2.js";

import { CPace, CPaceError } from "./cpace";

export { CPace, CPaceError, calculateGenerator, lvCat, prependLen } from "./cpace";

const WRAP_LABEL = new TextEncoder().encode("mw-pair-wrap");
const ZERO_NONCE = new Uint8Array(12);

export class PairingError extends Error {
  /** `"wrong_code"`: the member's confirmation does not hold; `"protocol"` otherwise. */
  constructor(
    readonly code: "wrong_code" | "protocol",
    message: string,
  ) {
    super(message);
  }
}

export function channelId(room: string): Uint8Array {
  return new TextEncoder().encode(`mw-pair|1|${room}`);
}

export function sessionId(serverNonce: string, clientNonce: string): Uint8Array {
  return new TextEncoder().encode(`${serverNonce}|${clientNonce}`);
}

export function b64url(bytes: Uint8Array): string {
  let text = "";
  for (const b of bytes) text += String.fromCharCode(b);
  return btoa(text).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
}

export function unb64url(text: string): Uint8Array {
  if (!/^[A-Za-z0-9_-]*$/.test(text)) throw new PairingError("protocol", "not base64url");
  const padded = text.replace(/-/g, "+").replace(/_/g, "/") + "=".repeat((4 - (text.length % 4)) % 4);
  return Uint8Array.from(atob(padded), (c) => c.charCodeAt(0));
}

/** The new device's side of one exchange (`scalar`: for test vectors only). */
export class Initiator {
  private readonly cpace: CPace;

  constructor(
    code: string,
    private readonly room: string,
    serverNonce: string,
    clientNonce: string,
    scalar?: Uint8Array,
  ) {
    this.cpace = new CPace(
      "initiator",
      new TextEncoder().encode(code),
      sessionId(serverNonce, clientNonce),
      channelId(room),
      scalar,
    );
  }

  /** Our share, for `pair_hello`. */
  get share(): string {
    return b64url(this.cpace.publicShare);
  }

  get isk(): Uint8Array {
    return this.cpace.isk;
  }

  /** The member's `pair_reply`: our tag for `pair_confirm`, if the member knows the code. */
  reply(shareB: string, tagB: string): string {
    try {
      this.cpace.derive(unb64url(shareB));
    } catch (err) {
      throw new PairingError("protocol", err instanceof CPaceError ? err.message : String(err));
    }
    if (!this.cpace.verify(unb64url(tagB))) {
      throw new PairingError("wrong_code", "the member's confirmation does not hold: wrong code");
    }
    return b64url(this.cpace.tag());
  }

  /** The room key from `pair_key`. */
  roomKey(sealed: string): string {
    const key = sha512(new Uint8Array([...WRAP_LABEL, ...this.cpace.isk])).slice(0, 32);
    try {
      const plain = chacha20poly1305(key, ZERO_NONCE, channelId(this.room)).decrypt(unb64url(sealed));
      return new TextDecoder().decode(plain);
    } catch {
      throw new PairingError("protocol", "the sealed room key does not open");
    }
  }
}
