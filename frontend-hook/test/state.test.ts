import { describe, expect, it } from "vitest";

import { WebRTCCommandError, parseCommandError } from "../src/errors";
import { selectConnectionState, selectLeader } from "../src/selectors";
import { initialRoomState, roomReducer, type RoomAction, type RoomState } from "../src/state";
import type { StateEntry } from "../src/generated/sidecar-types";
import { compareVersions, selectState } from "../src/retained";
import { BOOTH, IDLE_STATUS, LOBBY, STAGE, peer } from "./helpers";

const run = (actions: RoomAction[], from: RoomState = initialRoomState) => actions.reduce(roomReducer, from);

describe("roomReducer", () => {
  it("offline overrides the election's state and a leader lost meanwhile keeps it so", () => {
    const offline = run([
      { type: "leader_changed", at: 1, params: { leader_id: BOOTH.peer_id, is_leader: false, term: 2 } },
      { type: "network_changed", at: 2, params: { addresses: [], online: false } },
      { type: "leader_changed", at: 3, params: { leader_id: null, is_leader: false, term: 2 } },
    ]);
    expect(selectConnectionState(offline)).toBe("offline");
    const back = run([{ type: "network_changed", at: 4, params: { addresses: ["10.0.0.7"], online: true } }], offline);
    expect(selectConnectionState(back)).toBe("discovering");
    expect(back.network).toEqual({ addresses: ["10.0.0.7"], online: true });
  });

  it("a leader that loses its network is still the leader when it is back", () => {
    const state = run([
      { type: "leader_changed", at: 1, params: { leader_id: BOOTH.peer_id, is_leader: true, term: 2 } },
      { type: "network_changed", at: 2, params: { addresses: [], online: false } },
      { type: "network_changed", at: 3, params: { addresses: ["10.0.0.5"], online: true } },
    ]);
    expect(selectConnectionState(state)).toBe("leader");
  });

  it("a connected-peers read older than a disconnect does not bring the peer back", () => {
    const state = run([
      { type: "peer_list_changed", at: 1, params: { peers: [BOOTH, STAGE] } },
      // read issued at clock 1, the disconnect arrives at 2, the read answers after it
      { type: "disconnected", at: 2, params: { peer_id: STAGE.peer_id, reason: "closed" } },
      { type: "connected_peers", issued: 1, peers: [STAGE] },
    ]);
    expect(state.peers.find((p) => p.peer_id === STAGE.peer_id)?.connection_state).toBe("disconnected");
  });

  it("a connected-peers read marks the peers it lacks as disconnected, unless an event says otherwise", () => {
    const state = run([
      { type: "peer_list_changed", at: 1, params: { peers: [BOOTH, STAGE, peer(LOBBY, { connection_state: "connected" })] } },
      { type: "connected", at: 2, params: { peer: peer(LOBBY, { connection_state: "connected" }) } },
      { type: "connected_peers", issued: 1, peers: [] },
    ]);
    expect(state.peers.map((p) => [p.name, p.connection_state])).toEqual([
      ["Booth", "self"],
      ["Stage left", "disconnected"],
      ["Lobby TV", "connected"],
    ]);
  });

  it("a newer peer list has the last word on membership over an older read", () => {
    const state = run([
      { type: "peer_list_changed", at: 3, params: { peers: [BOOTH] } },
      { type: "connected_peers", issued: 2, peers: [STAGE] },
    ]);
    expect(state.peers).toEqual([BOOTH]);
  });

  it("a leader read from before a stop does not revive the old run", () => {
    const state = run([
      { type: "leader_changed", at: 1, params: { leader_id: BOOTH.peer_id, is_leader: true, term: 5 } },
      { type: "stop_ok", at: 2 },
      { type: "leader_status", issued: 1, status: { ...IDLE_STATUS, state: "leader", leader_id: BOOTH.peer_id, is_leader: true, term: 6 } },
    ]);
    expect(selectConnectionState(state)).toBe("idle");
    expect(state.leader.leaderId).toBeNull();
  });

  it("a read older than a leader event still says whether this device's room is keyed", () => {
    // Started with a kept key: the leader is named (an event) before the read issued
    // earlier returns, still electing. Whether the room is keyed is this device's own
    // fact, not the leader's: the read tells it whoever leads.
    const state = run([
      { type: "start_begin", at: 1 },
      { type: "start_ok", at: 2, self: STAGE },
      { type: "leader_changed", at: 4, params: { leader_id: BOOTH.peer_id, is_leader: false, term: 3 } },
      { type: "leader_status", issued: 3, status: { ...IDLE_STATUS, state: "electing", keyed: true } },
    ]);
    expect(state.leader.leaderId).toBe(BOOTH.peer_id);
    expect(state.leader.keyed).toBe(true);
  });

  it("a leader read says idle: the sidecar is not running", () => {
    const state = run([
      { type: "start_begin", at: 1 },
      { type: "start_ok", at: 2, self: BOOTH },
      { type: "leader_status", issued: 3, status: IDLE_STATUS },
    ]);
    expect(selectConnectionState(state)).toBe("idle");
  });

  it("a leader read before start does not end the start", () => {
    const state = run([
      { type: "start_begin", at: 1 },
      { type: "leader_status", issued: 0, status: IDLE_STATUS },
    ]);
    expect(selectConnectionState(state)).toBe("starting");
  });

  it("an event proves a running peer: the hook mounted on a running sidecar", () => {
    const state = run([{ type: "leader_changed", at: 1, params: { leader_id: STAGE.peer_id, is_leader: false, term: 2 } }]);
    expect(selectConnectionState(state)).toBe("follower");
  });

  it("leader loss without a new leader yet reads as electing", () => {
    const state = run([
      { type: "leader_changed", at: 1, params: { leader_id: STAGE.peer_id, is_leader: false, term: 2 } },
      { type: "leader_changed", at: 2, params: { leader_id: null, is_leader: false, term: 2 } },
    ]);
    expect(selectConnectionState(state)).toBe("electing");
    expect(selectLeader(state).leader).toBeNull();
  });

  it("the leader's PeerInfo comes from the room when the status lacks it", () => {
    const state = run([
      { type: "peer_list_changed", at: 1, params: { peers: [BOOTH, STAGE] } },
      { type: "leader_changed", at: 2, params: { leader_id: STAGE.peer_id, is_leader: false, term: 3 } },
    ]);
    expect(selectLeader(state).leader?.name).toBe("Stage left");
  });

  it("messages stay bounded, also when the bound shrinks", () => {
    const msg = (n: number) => ({ from: STAGE.peer_id, message_id: String(n), payload: n, sent_at: n });
    let state = run([1, 2, 3, 4].map((n) => ({ type: "message", params: msg(n), max: 3 }) as const));
    expect(state.messages.map((m) => m.payload)).toEqual([2, 3, 4]);
    state = roomReducer(state, { type: "trim_messages", max: 1 });
    expect(state.messages.map((m) => m.payload)).toEqual([4]);
  });

  it("a failed start is an error state; already started is not", () => {
    const error = new WebRTCCommandError("start_peer", { code: -32602, message: "Invalid params" });
    expect(selectConnectionState(run([{ type: "start_failed", at: 1, error, running: false }]))).toBe("error");
    expect(selectConnectionState(run([{ type: "start_failed", at: 1, error, running: true }]))).toBe("discovering");
  });
});

describe("parseCommandError", () => {
  it("reads JSON-RPC error objects, wrapped ones, JSON strings, Errors and plain strings", () => {
    expect(parseCommandError({ code: -32004, message: "Payload too large", data: { size: 70000 } })).toEqual({
      code: -32004,
      message: "Payload too large",
      data: { size: 70000 },
      kind: null,
    });
    expect(parseCommandError({ error: { code: -32001, message: "Peer not started" } })).toMatchObject({
      code: -32001,
      message: "Peer not started",
    });
    expect(parseCommandError('{"code":-32003,"message":"Peer not connected"}')).toMatchObject({
      code: -32003,
      message: "Peer not connected",
    });
    expect(parseCommandError("sidecar exited")).toEqual({ code: null, message: "sidecar exited", data: undefined, kind: null });
    expect(parseCommandError({ kind: "timeout", code: null, message: "timed out", data: null })).toEqual({
      code: null,
      message: "timed out",
      data: undefined,
      kind: "timeout",
    });
    expect(parseCommandError(new Error("boom"))).toMatchObject({ code: null, message: "boom" });
    expect(parseCommandError(42)).toMatchObject({ code: null, message: "42" });
  });
});

describe("retained state", () => {
  const entry = (key: string, value: unknown, time: number, counter = 0, origin = BOOTH.peer_id): StateEntry => ({
    key,
    value,
    origin,
    version: { time, counter },
  });
  const current = (state: RoomState) =>
    Object.fromEntries(Object.entries(selectState(state.retained)).map(([k, e]) => [k, e.value]));

  it("orders writes as the sidecar does: time, then counter, then origin", () => {
    expect(compareVersions(entry("k", 1, 5), entry("k", 2, 6))).toBeLessThan(0);
    expect(compareVersions(entry("k", 1, 5, 2), entry("k", 2, 5, 1))).toBeGreaterThan(0);
    expect(compareVersions(entry("k", 1, 5, 0, "aaaa"), entry("k", 2, 5, 0, "bbbb"))).toBeLessThan(0);
  });

  it("an event sets or clears a key; an older one changes nothing", () => {
    const state = run([
      { type: "state", at: 1, params: entry("slide", 1, 10) },
      { type: "state", at: 2, params: entry("song", "Be Thou My Vision", 11) },
      { type: "state", at: 3, params: entry("slide", 0, 9) },
      { type: "state", at: 4, params: entry("song", null, 12) },
    ]);
    expect(current(state)).toEqual({ slide: 1 });
  });

  it("a read keeps what changed after it was issued and drops what the sidecar no longer has", () => {
    const state = run([
      { type: "state", at: 1, params: entry("old", "x", 10) },
      { type: "state", at: 3, params: entry("slide", 4, 12) },
      { type: "state_snapshot", issued: 2, entries: [entry("slide", 3, 11), entry("song", "s", 8)] },
    ]);
    expect(current(state)).toEqual({ slide: 4, song: "s" });
  });

  it("a read issued before a stop does not bring the old run's state back", () => {
    const state = run([
      { type: "state", at: 1, params: entry("slide", 1, 10) },
      { type: "stop_ok", at: 3 },
      { type: "state_snapshot", issued: 2, entries: [entry("slide", 1, 10)] },
    ]);
    expect(current(state)).toEqual({});
  });
});

describe("how the room was found", () => {
  it("comes from get_leader_status and is forgotten when another leader is named", () => {
    const status = {
      ...IDLE_STATUS,
      state: "follower" as const,
      leader_id: BOOTH.peer_id,
      term: 2,
      found_by: ["rendezvous" as const],
    };
    const read = run([{ type: "leader_status", issued: 0, status }]);
    expect(read.leader.foundBy).toEqual(["rendezvous"]);
    const same = run([{ type: "leader_changed", at: 1, params: { leader_id: BOOTH.peer_id, is_leader: false, term: 2 } }], read);
    expect(same.leader.foundBy).toEqual(["rendezvous"]);
    const other = run([{ type: "leader_changed", at: 2, params: { leader_id: STAGE.peer_id, is_leader: false, term: 3 } }], read);
    expect(other.leader.foundBy).toEqual([]);
  });
});
