import { readFileSync } from "node:fs";
import { dirname, resolve } from "node:path";
import { fileURLToPath } from "node:url";

import { describe, expect, it } from "vitest";

import type { Envelope, SignalMessage } from "../src/generated/sidecar-types";
import { hex, Identity, registrationStatement, sdpAuth, Sealer, sessionKey } from "../src/web/core/crypto";

interface Wire {
  identity: { secret_key: string; public_key: string; peer_id: string; statement: string; signature: string };
  sealing: {
    room_key: string;
    room: string;
    server_nonce: string;
    client_nonce: string;
    session_key: string;
    client_frames: { seq: number; body: string; mac: string }[];
    server_frames: { seq: number; body: string; mac: string }[];
  };
  sdp_auth: { room_key: string; kind: string; from: string; to: string; link: string; epoch: number; sdp: string; auth: string }[];
  frames: string[];
  envelopes: string[];
}

const here = dirname(fileURLToPath(import.meta.url));
const wire = JSON.parse(readFileSync(resolve(here, "../../tests/vectors/wire.json"), "utf8")) as Wire;
const unhex = (text: string) => Uint8Array.from(text.match(/../g) ?? [], (h) => parseInt(h, 16));

describe("the wire protocol: the vectors the sidecar's tests check too", () => {
  it("derives the peer id from the key and signs the registration the same way", () => {
    const v = wire.identity;
    const me = new Identity(unhex(v.secret_key));
    expect([me.publicKey, me.peerId]).toEqual([v.public_key, v.peer_id]);
    const [, nonce = "", peerId = "", room = "", seq = "0"] = v.statement.split("|");
    const statement = registrationStatement(nonce, peerId, room, Number(seq));
    expect(new TextDecoder().decode(statement)).toBe(v.statement);
    expect(me.sign(statement)).toBe(v.signature);
  });

  it("seals and opens frames under the same session key", () => {
    const v = wire.sealing;
    const key = sessionKey(v.room_key, v.server_nonce, v.client_nonce, v.room);
    expect(hex(key)).toBe(v.session_key);
    const client = new Sealer(key, "c", "s");
    for (const f of v.client_frames) expect(client.seal(f.body)).toEqual([f.seq, f.mac]);
    for (const f of v.server_frames) expect(client.open(f.seq, f.body, f.mac)).toBe(true);
    const replay = v.server_frames[0];
    if (replay) expect(client.open(replay.seq, replay.body, replay.mac)).toBe(false);
  });

  it("makes the same SDP MACs", () => {
    for (const v of wire.sdp_auth) expect(sdpAuth(v.room_key, v.kind, v.from, v.to, v.link, v.epoch, v.sdp)).toBe(v.auth);
  });

  it("reads every frame and envelope the sidecar writes", () => {
    const frameTypes = wire.frames.map((t) => (JSON.parse(t) as SignalMessage).type);
    expect(frameTypes).toEqual(expect.arrayContaining(["challenge", "register", "sealed", "offer", "answer", "relay", "peer_list"]));
    const envelopes = wire.envelopes.map((t) => JSON.parse(t) as Envelope);
    expect(envelopes.map((e) => e.type)).toEqual(["sync", "control", "state", "ack", "ping", "pong", "bye"]);
    // What the web peer writes has the same shape: keys in the sidecar's order.
    expect(JSON.stringify({ type: "sync", received: 4 })).toBe(wire.envelopes[0]);
    expect(JSON.stringify({ type: "ack", count: 5 })).toBe(wire.envelopes[3]);
  });
});
