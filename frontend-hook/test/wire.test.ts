import { readFileSync } from "node:fs";
import { dirname, resolve } from "node:path";
import { fileURLToPath } from "node:url";

import { describe, expect, it } from "vitest";

import type { Envelope, RelayShare, SignalMessage } from "../src/generated/sidecar-types";
import { RelaySeal } from "../src/web/core/relayseal";
import { constantTimeEqual, Ephemeral, hex, Identity, openSession, registrationStatement, roomSecret, sdpAuth, sessionBinding, sessionKeys, type Side } from "../src/web/core/crypto";

interface Wire {
  identity: { secret_key: string; public_key: string; peer_id: string; statement: string; signature: string };
  sealing: {
    room_key: string;
    room: string;
    room_secret: string;
    server_nonce: string;
    client_nonce: string;
    server_scalar: string;
    client_scalar: string;
    server_share: string;
    client_share: string;
    key_to_server: string;
    key_to_client: string;
    client_frames: { seq: number; text: string; box: string }[];
    server_frames: { seq: number; text: string; box: string }[];
  };
  sdp_auth: { room_key: string; kind: string; from: string; to: string; link: string; epoch: number; sdp: string; auth: string }[];
  relay_seal: {
    offerer_secret_key: string;
    answerer_secret_key: string;
    offerer: string;
    answerer: string;
    link: string;
    epoch: number;
    offer_scalar: string;
    answer_scalar: string;
    offer: RelayShare;
    answer: RelayShare;
    offerer_frames: { seq: number; text: string; box: string }[];
    answerer_frames: { seq: number; text: string; box: string }[];
  };
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
    const [, nonce = "", peerId = "", room = "", seq = "0", ...session] = v.statement.split("|");
    const s = wire.sealing;
    expect(session.join("|")).toBe(sessionBinding(s.client_nonce, s.server_share, s.client_share));
    const statement = registrationStatement(nonce, peerId, room, Number(seq), session.join("|"));
    expect(new TextDecoder().decode(statement)).toBe(v.statement);
    expect(me.sign(statement)).toBe(v.signature);
  });

  it("stretches the room key, agrees on the session keys and seals frames both ways", () => {
    const v = wire.sealing;
    expect(hex(roomSecret(v.room_key))).toBe(v.room_secret);
    const server = new Ephemeral(unhex(v.server_scalar));
    const client = new Ephemeral(unhex(v.client_scalar));
    expect([server.share, client.share]).toEqual([v.server_share, v.client_share]);
    const shared = client.agree(server.share);
    expect(hex(shared)).toBe(hex(server.agree(client.share)));
    const [toServer, toClient] = sessionKeys(v.room_key, v.room, v.server_nonce, v.client_nonce, server.share, client.share, shared);
    expect([hex(toServer), hex(toClient)]).toEqual([v.key_to_server, v.key_to_client]);
    const end = (side: Side) =>
      openSession(v.room_key, v.room, {
        side,
        mine: side === "client" ? client : server,
        serverNonce: v.server_nonce,
        clientNonce: v.client_nonce,
        serverShare: server.share,
        clientShare: client.share,
      });
    const [c, s] = [end("client"), end("server")];
    for (const f of v.client_frames) {
      expect(c.seal(f.text)).toEqual([f.seq, f.box]);
      expect(s.open(f.seq, f.box)).toBe(f.text);
    }
    for (const f of v.server_frames) {
      expect(s.seal(f.text)).toEqual([f.seq, f.box]);
      expect(c.open(f.seq, f.box)).toBe(f.text);
    }
    const replay = v.server_frames[0];
    if (replay) expect(c.open(replay.seq, replay.box)).toBeNull();
    expect(() => client.agree("A".repeat(43))).toThrow(); // the all-zero point
  });

  it("compares MACs in constant time, and correctly", () => {
    expect(constantTimeEqual("abc", "abc")).toBe(true);
    expect(constantTimeEqual("abc", "abd")).toBe(false);
    expect(constantTimeEqual("abc", "abcd")).toBe(false);
    expect(constantTimeEqual("", "")).toBe(true);
  });

  it("agrees on a relayed channel's shares and seals its messages both ways", () => {
    const v = wire.relay_seal;
    const end = (secret: string, scalar: string, offerer: boolean) => {
      const me = new Identity(unhex(secret));
      expect(me.peerId).toBe(offerer ? v.offerer : v.answerer);
      const peer = offerer ? v.answerer : v.offerer;
      return new RelaySeal(me, { peer, link: v.link, epoch: v.epoch, offerer, ephemeral: new Ephemeral(unhex(scalar)) });
    };
    const offering = end(v.offerer_secret_key, v.offer_scalar, true);
    const answering = end(v.answerer_secret_key, v.answer_scalar, false);
    expect(offering.mine()).toEqual(v.offer);
    expect(answering.accept(v.offer)).toBe(true);
    expect(answering.mine()).toEqual(v.answer);
    expect(offering.accept(v.answer)).toBe(true);
    for (const [sender, receiver, frames] of [
      [offering, answering, v.offerer_frames],
      [answering, offering, v.answerer_frames],
    ] as const) {
      for (const f of frames) {
        expect(sender.seal(f.text)).toEqual([f.seq, f.box]);
        expect(receiver.open(f.seq, f.box)).toBe(f.text);
        expect(receiver.open(f.seq, f.box)).toBeNull(); // not twice
      }
    }
    // A share put in by the relay in the middle is refused.
    const forged = { ...v.offer, share: v.answer.share };
    expect(end(v.answerer_secret_key, v.answer_scalar, false).accept(forged)).toBe(false);
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
