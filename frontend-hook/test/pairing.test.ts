import { readFileSync } from "node:fs";
import { dirname, resolve } from "node:path";
import { fileURLToPath } from "node:url";

import { describe, expect, it } from "vitest";

import { calculateGenerator, channelId, Initiator, PairingError, prependLen, sessionId } from "../src/pairing";

interface Vector {
  code: string;
  room: string;
  server_nonce: string;
  client_nonce: string;
  scalar_a: string;
  ci: string;
  sid: string;
  generator: string;
  share_a: string;
  share_b: string;
  isk: string;
  tag_a: string;
  tag_b: string;
  room_key: string;
  sealed_room_key: string;
}

const here = dirname(fileURLToPath(import.meta.url));
const { vectors } = JSON.parse(
  readFileSync(resolve(here, "../../tests/vectors/pairing.json"), "utf8"),
) as { vectors: Vector[] };

const hex = (bytes: Uint8Array) => Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
const unhex = (text: string) => Uint8Array.from(text.match(/../g) ?? [], (h) => parseInt(h, 16));

describe("pairing: the vectors the sidecar's tests check too", () => {
  it.each(vectors.map((v) => [v.code, v] as const))("code %s", (_, v) => {
    expect(hex(channelId(v.room))).toBe(v.ci);
    expect(hex(sessionId(v.server_nonce, v.client_nonce))).toBe(v.sid);
    const g = calculateGenerator(new TextEncoder().encode(v.code), channelId(v.room), sessionId(v.server_nonce, v.client_nonce));
    expect(hex(g)).toBe(v.generator);
    const me = new Initiator(v.code, v.room, v.server_nonce, v.client_nonce, unhex(v.scalar_a));
    expect(me.share).toBe(v.share_a);
    expect(me.reply(v.share_b, v.tag_b)).toBe(v.tag_a);
    expect(hex(me.isk)).toBe(v.isk);
    expect(me.roomKey(v.sealed_room_key)).toBe(v.room_key);
  });

  it("a wrong code is caught before anything is sent back", () => {
    const v = vectors[0]!;
    const me = new Initiator("000000", v.room, v.server_nonce, v.client_nonce, unhex(v.scalar_a));
    expect(() => me.reply(v.share_b, v.tag_b)).toThrow(PairingError);
  });
});

describe("the length prefix", () => {
  it("is LEB128, as the draft's prepend_len", () => {
    expect(Array.from(prependLen(new Uint8Array(0)))).toEqual([0]);
    expect(Array.from(prependLen(new Uint8Array(127))).slice(0, 1)).toEqual([127]);
    expect(Array.from(prependLen(new Uint8Array(128))).slice(0, 2)).toEqual([0x80, 0x01]);
    expect(Array.from(prependLen(new Uint8Array(300))).slice(0, 2)).toEqual([0xac, 0x02]);
  });
});
