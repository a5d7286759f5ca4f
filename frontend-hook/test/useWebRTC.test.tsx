import { act, cleanup, renderHook, waitFor } from "@testing-library/react";
import { emit } from "@tauri-apps/api/event";
import { clearMocks } from "@tauri-apps/api/mocks";
import { afterEach, describe, expect, it, vi } from "vitest";

import { WebRTCCommandError } from "../src/errors";
import type { LeaderStatus, MessageParams, PeerInfo, SendResult } from "../src/generated/sidecar-types";
import { REJOINED_EVENT, SIDECAR_EVENT } from "../src/transport";
import { WEBRTC_EVENTS, useWebRTC, type UseWebRTCOptions } from "../src/useWebRTC";
import {
  BOOTH,
  IDLE_STATUS,
  LOBBY,
  PREFIX,
  STAGE,
  deferred,
  fire,
  flush,
  installTauri,
  peer,
  type Handler,
} from "./helpers";

afterEach(() => {
  cleanup();
  clearMocks();
});

/** Renders the hook and waits until its listeners are in place and the mount refresh is done. */
async function mountHook(options: UseWebRTCOptions = {}) {
  const rendered = renderHook(() => useWebRTC(options));
  await waitFor(() => {
    expect(rendered.result.current.subscribed).toBe(true);
  });
  await flush();
  return rendered;
}

/** The sidecar's notifications and the plugin's two lifecycle events. */
const ALL_EVENTS = [...WEBRTC_EVENTS, SIDECAR_EVENT, REJOINED_EVENT];

const message = (n: number): MessageParams => ({
  from: STAGE.peer_id,
  message_id: `m${String(n)}`,
  payload: { slide: n },
  sent_at: 1764110001000 + n,
});

describe("subscription", () => {
  it("subscribes to every event on mount, then reads the leader and the connected peers", async () => {
    const tauri = installTauri();
    await mountHook();
    expect(
      tauri
        .listens()
        .map((c) => (c.args as { event: string }).event)
        .sort(),
    ).toEqual([...ALL_EVENTS].sort());
    expect(
      tauri
        .commands()
        .map((c) => c.cmd)
        .sort(),
    ).toEqual([`${PREFIX}get_connected_peers`, `${PREFIX}get_leader_status`, `${PREFIX}get_state`]);
  });

  it("removes every listener on unmount: emitting afterwards changes nothing", async () => {
    const tauri = installTauri();
    let renders = 0;
    const { result, unmount } = renderHook(() => {
      renders++;
      return useWebRTC();
    });
    await waitFor(() => {
      expect(result.current.subscribed).toBe(true);
    });
    await flush();
    const listened = tauri.listens().map((c) => (c.args as { event: string }).event);

    unmount();
    await flush();

    // each listener's unlisten ran: one plugin:event|unlisten per event, with that event's id
    const unlistened = tauri.unlistens().map((c) => (c.args as { event: string }).event);
    expect(unlistened.sort()).toEqual(listened.sort());

    const before = renders;
    const warn = vi.spyOn(console, "warn").mockImplementation(() => undefined);
    await act(async () => {
      await emit("webrtc:peer_list_changed", { peers: [BOOTH, STAGE] });
      await emit("webrtc:leader_changed", { leader_id: STAGE.peer_id, is_leader: false, term: 9 });
      await emit("webrtc:message", message(1));
    });
    expect(renders).toBe(before);
    expect(result.current.peers).toEqual([]);
    expect(result.current.messages).toEqual([]);
    // nothing was left registered for the mock to call back (it warns on a stale callback id)
    expect(warn).not.toHaveBeenCalled();
  });

  it("unlistens listeners whose listen resolves after unmount", async () => {
    const tauri = installTauri();
    const { unmount } = renderHook(() => useWebRTC());
    // the mocked listen is async: unmount before any of the promises resolved
    expect(tauri.unlistens()).toHaveLength(0);
    unmount();
    await flush();
    const n = ALL_EVENTS.length;
    expect(tauri.listens()).toHaveLength(n);
    expect(tauri.unlistens()).toHaveLength(n);
    // unmounted before subscribing: no mount refresh either
    expect(tauri.commands()).toEqual([]);
  });

  it("subscribes once under StrictMode and leaves no listener behind", async () => {
    const tauri = installTauri();
    const { result, unmount } = renderHook(() => useWebRTC(), { reactStrictMode: true });
    await waitFor(() => {
      expect(result.current.subscribed).toBe(true);
    });
    await flush();
    // mount, unmount, mount: the first listeners are released, the second ones stay
    const n = ALL_EVENTS.length;
    expect(tauri.listens()).toHaveLength(2 * n);
    expect(tauri.unlistens()).toHaveLength(n);

    await fire("webrtc:peer_list_changed", { peers: [BOOTH] });
    expect(result.current.peers).toEqual([BOOTH]);

    unmount();
    await flush();
    expect(tauri.unlistens()).toHaveLength(2 * n);
  });

  it("reports a failed subscription in error", async () => {
    installTauri();
    // no IPC at all, as in a plain browser tab
    clearMocks();
    const { result } = renderHook(() => useWebRTC());
    await waitFor(() => {
      expect(result.current.error).toBeInstanceOf(WebRTCCommandError);
    });
    await flush();
    expect(result.current.error?.command).toMatch(/^listen (webrtc|mobile-worship):/);
    expect(result.current.error?.message).toMatch(/__TAURI_INTERNALS__/);
    expect(result.current.subscribed).toBe(false);
  });
});

describe("state follows the events", () => {
  it("webrtc:peer_list_changed sets the room", async () => {
    installTauri();
    const { result } = await mountHook();
    await fire("webrtc:peer_list_changed", { peers: [BOOTH, STAGE, LOBBY] });
    expect(result.current.peers).toEqual([BOOTH, STAGE, LOBBY]);
    expect(result.current.connectedPeers).toEqual([STAGE]);

    await fire("webrtc:peer_list_changed", { peers: [BOOTH, STAGE] });
    expect(result.current.peers.map((p) => p.name)).toEqual(["Booth", "Stage left"]);
  });

  it("webrtc:connected marks the peer connected, adding it if new", async () => {
    installTauri();
    const { result } = await mountHook();
    await fire("webrtc:peer_list_changed", { peers: [BOOTH, LOBBY] });
    await fire("webrtc:connected", { peer: peer(LOBBY, { connection_state: "connected" }) });
    expect(result.current.peers.find((p) => p.peer_id === LOBBY.peer_id)?.connection_state).toBe("connected");
    expect(result.current.connectedPeers.map((p) => p.name)).toEqual(["Lobby TV"]);

    await fire("webrtc:connected", { peer: STAGE });
    expect(result.current.peers.map((p) => p.name)).toEqual(["Booth", "Lobby TV", "Stage left"]);
    expect(result.current.connectedPeers.map((p) => p.name)).toEqual(["Lobby TV", "Stage left"]);
  });

  it("webrtc:disconnected marks the peer disconnected", async () => {
    installTauri();
    const { result } = await mountHook();
    await fire("webrtc:peer_list_changed", { peers: [BOOTH, STAGE] });
    await fire("webrtc:disconnected", { peer_id: STAGE.peer_id, reason: "timeout" });
    expect(result.current.peers.find((p) => p.peer_id === STAGE.peer_id)?.connection_state).toBe("disconnected");
    expect(result.current.connectedPeers).toEqual([]);
  });

  it("webrtc:leader_changed sets the leader and this device's role", async () => {
    installTauri();
    const { result } = await mountHook();
    await fire("webrtc:peer_list_changed", { peers: [peer(BOOTH, { is_leader: false }), STAGE] });
    await fire("webrtc:leader_changed", { leader_id: BOOTH.peer_id, is_leader: true, term: 1 });
    expect(result.current.leader).toMatchObject({ leaderId: BOOTH.peer_id, isLeader: true, term: 1 });
    expect(result.current.leader.leader?.name).toBe("Booth");
    expect(result.current.connectionState).toBe("leader");
    expect(result.current.peers.map((p) => p.is_leader)).toEqual([true, false]);

    await fire("webrtc:leader_changed", { leader_id: STAGE.peer_id, is_leader: false, term: 2 });
    expect(result.current.leader).toMatchObject({ leaderId: STAGE.peer_id, isLeader: false, term: 2 });
    expect(result.current.leader.leader?.name).toBe("Stage left");
    expect(result.current.connectionState).toBe("follower");
    expect(result.current.peers.map((p) => p.is_leader)).toEqual([false, true]);
  });

  it("webrtc:message keeps the last maxMessages messages and calls onMessage for each", async () => {
    installTauri();
    const onMessage = vi.fn();
    const { result } = await mountHook({ maxMessages: 3, onMessage });
    for (let n = 1; n <= 5; n++) await fire("webrtc:message", message(n));
    expect(result.current.messages).toEqual([message(3), message(4), message(5)]);
    expect(onMessage).toHaveBeenCalledTimes(5);
    expect(onMessage).toHaveBeenLastCalledWith(message(5));
  });

  it("keeps 100 messages by default", async () => {
    installTauri();
    const { result } = await mountHook();
    await act(async () => {
      for (let n = 1; n <= 120; n++) await emit("webrtc:message", message(n));
    });
    expect(result.current.messages).toHaveLength(100);
    expect(result.current.messages[0]).toEqual(message(21));
    expect(result.current.messages[99]).toEqual(message(120));
  });
});

describe("commands", () => {
  const sendResult: SendResult = { message_id: "msg-1", sent_to: [STAGE.peer_id] };

  it("setState sets a retained value with no message unless asked; state follows the events", async () => {
    const tauri = installTauri({ [`${PREFIX}send_control_message`]: () => ({ ...sendResult, sent_to: [] }) });
    const { result } = await mountHook();
    await act(async () => {
      await result.current.setState("slide", { n: 4 });
      await result.current.setState("note", "two minutes", { displayClass: "stage" });
      await result.current.setState("slide", null, { to: [STAGE.peer_id] });
      await result.current.sendMessage("go", { retain: "cue" });
    });
    expect(tauri.commands().filter((c) => c.cmd.endsWith("send_control_message")).map((c) => c.args)).toStrictEqual([
      { payload: { n: 4 }, to: [], display_class: null, retain: "slide" },
      { payload: "two minutes", to: null, display_class: "stage", retain: "note" },
      { payload: null, to: [STAGE.peer_id], display_class: null, retain: "slide" },
      { payload: "go", to: null, display_class: null, retain: "cue" },
    ]);
    const entry = (key: string, value: unknown, time: number) => ({
      key,
      value,
      origin: BOOTH.peer_id,
      version: { time, counter: 0 },
    });
    await fire("webrtc:state", entry("slide", { n: 4 }, 10));
    await fire("webrtc:state", entry("note", "two minutes", 11));
    expect(result.current.state).toEqual({
      slide: entry("slide", { n: 4 }, 10),
      note: entry("note", "two minutes", 11),
    });
    await fire("webrtc:state", entry("slide", null, 12));
    expect(Object.keys(result.current.state)).toEqual(["note"]);
  });

  it("the mount refresh reads get_state; an event newer than the read is kept", async () => {
    const read = deferred<unknown[]>();
    const old = { key: "slide", value: 1, origin: BOOTH.peer_id, version: { time: 5, counter: 0 } };
    const cleared = { key: "gone", value: "x", origin: BOOTH.peer_id, version: { time: 6, counter: 0 } };
    installTauri({ [`${PREFIX}get_state`]: () => read.promise });
    const { result } = renderHook(() => useWebRTC());
    await waitFor(() => {
      expect(result.current.subscribed).toBe(true);
    });
    await fire("webrtc:state", { ...old, value: 2, version: { time: 9, counter: 0 } });
    await act(async () => {
      read.resolve([old, cleared]);
      await flush();
    });
    expect(result.current.state.slide?.value).toBe(2);
    expect(result.current.state.gone?.value).toBe("x");
  });

  it("sendMessage invokes send_control_message with exactly {payload, to, display_class, retain}", async () => {
    const tauri = installTauri({ [`${PREFIX}send_control_message`]: () => sendResult });
    const { result } = await mountHook();
    let sent: SendResult | undefined;
    await act(async () => {
      sent = await result.current.sendMessage({ slide: 4 }, { to: STAGE.peer_id, displayClass: "stage" });
    });
    expect(sent).toEqual(sendResult);
    const sends = tauri.commands().filter((c) => c.cmd.endsWith("send_control_message"));
    expect(sends).toHaveLength(1);
    expect(sends[0]?.cmd).toBe("plugin:mobile-worship|send_control_message");
    expect(sends[0]?.args).toStrictEqual({
      payload: { slide: 4 },
      to: STAGE.peer_id,
      display_class: "stage",
      retain: null,
    });

    await act(async () => {
      await result.current.sendMessage("blackout");
      await result.current.sendMessage(null, { to: [STAGE.peer_id, LOBBY.peer_id] });
    });
    expect(tauri.commands().filter((c) => c.cmd.endsWith("send_control_message")).map((c) => c.args)).toStrictEqual([
      { payload: { slide: 4 }, to: STAGE.peer_id, display_class: "stage", retain: null },
      { payload: "blackout", to: null, display_class: null, retain: null },
      { payload: null, to: [STAGE.peer_id, LOBBY.peer_id], display_class: null, retain: null },
    ]);
  });

  it("uses the configured command prefix", async () => {
    const tauri = installTauri({
      get_leader_status: () => IDLE_STATUS,
      get_connected_peers: () => [],
      get_state: () => [],
      ping_peer: () => ({ rtt_ms: 0.8 }),
    });
    const { result } = await mountHook({ commandPrefix: "" });
    let rtt = 0;
    await act(async () => {
      rtt = await result.current.ping(STAGE.peer_id);
    });
    expect(rtt).toBe(0.8);
    expect(tauri.commands().map((c) => c.cmd)).toContain("ping_peer");
    expect(tauri.commands().find((c) => c.cmd === "ping_peer")?.args).toStrictEqual({ peer_id: STAGE.peer_id });
    expect(result.current.error).toBeNull();
  });

  it('commandArgs "params" wraps the params in one `params` argument', async () => {
    const tauri = installTauri({
      [`${PREFIX}send_control_message`]: () => sendResult,
      [`${PREFIX}start_peer`]: () => STAGE,
      [`${PREFIX}ping_peer`]: () => ({ rtt_ms: 1.5 }),
      [`${PREFIX}stop_peer`]: () => null,
    });
    const { result } = await mountHook({ commandArgs: "params" });
    await act(async () => {
      await result.current.startPeer({ name: "Stage left", peer_type: "display", display_class: "stage" });
      await result.current.sendMessage({ slide: 4 }, { displayClass: "stage" });
      await result.current.ping(BOOTH.peer_id);
      await result.current.stopPeer();
    });
    const args = Object.fromEntries(tauri.commands().map((c) => [c.cmd.slice(PREFIX.length), c.args]));
    expect(args).toStrictEqual({
      start_peer: { params: { name: "Stage left", peer_type: "display", display_class: "stage" } },
      send_control_message: { params: { payload: { slide: 4 }, to: null, display_class: "stage", retain: null } },
      ping_peer: { params: { peer_id: BOOTH.peer_id } },
      // commands without params get no args (invoke sends {})
      stop_peer: {},
      get_leader_status: {},
      get_connected_peers: {},
      get_state: {},
    });
  });

  it("startPeer passes the params by name and returns this peer; refresh follows", async () => {
    const tauri = installTauri({
      [`${PREFIX}start_peer`]: () => BOOTH,
    });
    const { result } = await mountHook();
    expect(result.current.connectionState).toBe("idle");
    tauri.set(`${PREFIX}get_leader_status`, () => ({
      state: "leader",
      leader_id: BOOTH.peer_id,
      is_leader: true,
      term: 1,
      leader: BOOTH,
      signaling_url: "ws://10.0.0.5:3010",
    }));
    let self: PeerInfo | undefined;
    await act(async () => {
      self = await result.current.startPeer({ name: "Booth", peer_type: "controller", room: "main" });
    });
    expect(self).toEqual(BOOTH);
    expect(tauri.commands().find((c) => c.cmd === `${PREFIX}start_peer`)?.args).toStrictEqual({
      name: "Booth",
      peer_type: "controller",
      room: "main",
    });
    await flush();
    expect(result.current.self).toEqual(BOOTH);
    expect(result.current.peers).toEqual([BOOTH]);
    expect(result.current.connectionState).toBe("leader");
    expect(result.current.leader.signalingUrl).toBe("ws://10.0.0.5:3010");
  });

  it("shows starting while start_peer runs, then discovering", async () => {
    const start = deferred<PeerInfo>();
    const tauri = installTauri({ [`${PREFIX}start_peer`]: () => start.promise });
    const { result } = await mountHook();
    tauri.set(`${PREFIX}get_leader_status`, () => ({ ...IDLE_STATUS, state: "discovering" }));
    let done: Promise<PeerInfo> | undefined;
    act(() => {
      done = result.current.startPeer({ name: "Stage left", peer_type: "display", display_class: "stage" });
    });
    await waitFor(() => {
      expect(result.current.connectionState).toBe("starting");
    });
    await act(async () => {
      start.resolve(STAGE);
      await done;
    });
    await flush();
    expect(result.current.connectionState).toBe("discovering");
  });

  it("webrtc:network_changed shows waiting for network, and back online reads where the election is", async () => {
    const tauri = installTauri();
    const { result } = await mountHook();
    await fire("webrtc:peer_list_changed", { peers: [BOOTH, STAGE] });
    await fire("webrtc:leader_changed", { leader_id: BOOTH.peer_id, is_leader: false, term: 2 });
    expect(result.current.connectionState).toBe("follower");
    const reads = () => tauri.commands().filter((c) => c.cmd === `${PREFIX}get_leader_status`).length;
    const before = reads();
    await fire("webrtc:network_changed", { addresses: [], online: false });
    expect(result.current.connectionState).toBe("offline");
    expect(result.current.network).toEqual({ addresses: [], online: false });
    expect(reads()).toBe(before); // nothing to read while offline
    tauri.set(`${PREFIX}get_leader_status`, () => ({
      ...IDLE_STATUS,
      state: "follower",
      leader_id: BOOTH.peer_id,
      term: 2,
      addresses: ["10.0.0.7"],
    }));
    await fire("webrtc:network_changed", { addresses: ["10.0.0.7"], online: true });
    await flush();
    expect(reads()).toBe(before + 1);
    expect(result.current.connectionState).toBe("follower");
    expect(result.current.network).toEqual({ addresses: ["10.0.0.7"], online: true });
  });

  it("a read while offline says so", async () => {
    const tauri = installTauri();
    const { result } = await mountHook();
    tauri.set(`${PREFIX}get_leader_status`, () => ({ ...IDLE_STATUS, state: "offline", addresses: [] }));
    await act(async () => {
      await result.current.refresh();
    });
    expect(result.current.connectionState).toBe("offline");
    expect(result.current.network).toEqual({ addresses: [], online: false });
  });

  it("stopPeer clears the room and returns to idle", async () => {
    const tauri = installTauri({ [`${PREFIX}stop_peer`]: () => null });
    const { result } = await mountHook();
    await fire("webrtc:peer_list_changed", { peers: [BOOTH, STAGE] });
    await fire("webrtc:leader_changed", { leader_id: BOOTH.peer_id, is_leader: true, term: 1 });
    await fire("webrtc:message", message(1));
    expect(result.current.connectionState).toBe("leader");
    await act(async () => {
      await result.current.stopPeer();
    });
    expect(tauri.commands().some((c) => c.cmd === `${PREFIX}stop_peer`)).toBe(true);
    expect(result.current.connectionState).toBe("idle");
    expect(result.current.peers).toEqual([]);
    expect(result.current.leader).toMatchObject({ leaderId: null, isLeader: false, leader: null });
    // received messages stay readable
    expect(result.current.messages).toEqual([message(1)]);
  });

  it("refresh re-reads the leader status and the connected peers", async () => {
    const tauri = installTauri();
    const { result } = await mountHook();
    const status: LeaderStatus = {
      state: "follower",
      leader_id: BOOTH.peer_id,
      is_leader: false,
      term: 4,
      leader: peer(BOOTH, { connection_state: "connected" }),
      signaling_url: "ws://10.0.0.5:3010",
    };
    tauri.set(`${PREFIX}get_leader_status`, () => status);
    tauri.set(`${PREFIX}get_connected_peers`, () => [peer(BOOTH, { connection_state: "connected" })]);
    const before = tauri.commands().length;
    await act(async () => {
      await result.current.refresh();
    });
    expect(
      tauri
        .commands()
        .slice(before)
        .map((c) => c.cmd)
        .sort(),
    ).toEqual([`${PREFIX}get_connected_peers`, `${PREFIX}get_leader_status`, `${PREFIX}get_state`]);
    expect(result.current.connectionState).toBe("follower");
    expect(result.current.leader).toMatchObject({ leaderId: BOOTH.peer_id, term: 4, isLeader: false });
    expect(result.current.leader.leader?.name).toBe("Booth");
    expect(result.current.connectedPeers.map((p) => p.name)).toEqual(["Booth"]);
  });
});

describe("events that arrive before a command returns", () => {
  it("keeps events that arrive while start_peer runs", async () => {
    const tauri = installTauri({
      [`${PREFIX}start_peer`]: async () => {
        // the sidecar reports the room before the bridge answers the command
        await emit("webrtc:leader_changed", { leader_id: BOOTH.peer_id, is_leader: true, term: 1 });
        await emit("webrtc:peer_list_changed", { peers: [BOOTH, peer(STAGE, { connection_state: "connecting" })] });
        await emit("webrtc:connected", { peer: STAGE });
        return peer(BOOTH, { is_leader: false });
      },
    });
    const { result } = await mountHook();
    // a read that lags behind the events (a lower term of the same run) changes nothing
    tauri.set(`${PREFIX}get_leader_status`, () => ({ ...IDLE_STATUS, state: "discovering" }));
    tauri.set(`${PREFIX}get_connected_peers`, () => [STAGE]);
    await act(async () => {
      await result.current.startPeer({ name: "Booth", peer_type: "controller" });
    });
    await flush();
    expect(result.current.connectionState).toBe("leader");
    expect(result.current.leader).toMatchObject({ leaderId: BOOTH.peer_id, isLeader: true, term: 1 });
    expect(result.current.peers).toEqual([BOOTH, STAGE]);
    expect(result.current.self).toEqual(BOOTH);
    expect(result.current.connectedPeers).toEqual([STAGE]);
  });

  it("keeps events that arrive before the mount refresh returns", async () => {
    const status = deferred<LeaderStatus>();
    const connected = deferred<PeerInfo[]>();
    const handlers: Record<string, Handler> = {
      [`${PREFIX}get_leader_status`]: () => status.promise,
      [`${PREFIX}get_connected_peers`]: () => connected.promise,
    };
    installTauri(handlers);
    const { result } = renderHook(() => useWebRTC());
    await waitFor(() => {
      expect(result.current.subscribed).toBe(true);
    });

    await fire("webrtc:leader_changed", { leader_id: BOOTH.peer_id, is_leader: false, term: 3 });
    await fire("webrtc:peer_list_changed", {
      peers: [peer(BOOTH, { connection_state: "new" }), peer(LOBBY, { connection_state: "self", is_leader: false })],
    });
    await fire("webrtc:connected", { peer: peer(BOOTH, { connection_state: "connected" }) });
    await fire("webrtc:message", message(1));

    // both reads were answered before those events and describe an older room
    await act(async () => {
      status.resolve({ ...IDLE_STATUS, state: "electing", term: 2 });
      connected.resolve([]);
      await Promise.resolve();
    });
    await flush();

    expect(result.current.leader).toMatchObject({ leaderId: BOOTH.peer_id, isLeader: false, term: 3 });
    expect(result.current.connectionState).toBe("follower");
    expect(result.current.connectedPeers.map((p) => p.name)).toEqual(["Booth"]);
    expect(result.current.peers.map((p) => p.name)).toEqual(["Booth", "Lobby TV"]);
    expect(result.current.messages).toEqual([message(1)]);
  });

  it("takes a newer term from a read, and what only the read knows", async () => {
    const status = deferred<LeaderStatus>();
    installTauri({ [`${PREFIX}get_leader_status`]: () => status.promise });
    const { result } = renderHook(() => useWebRTC());
    await waitFor(() => {
      expect(result.current.subscribed).toBe(true);
    });
    await fire("webrtc:leader_changed", { leader_id: BOOTH.peer_id, is_leader: false, term: 3 });
    await act(async () => {
      status.resolve({
        state: "follower",
        leader_id: BOOTH.peer_id,
        is_leader: false,
        term: 3,
        leader: BOOTH,
        signaling_url: "ws://10.0.0.5:3010",
      });
      await Promise.resolve();
    });
    await flush();
    expect(result.current.leader).toMatchObject({
      leaderId: BOOTH.peer_id,
      term: 3,
      signalingUrl: "ws://10.0.0.5:3010",
    });
    expect(result.current.leader.leader?.name).toBe("Booth");
  });
});

describe("errors", () => {
  it("a command's error reaches the caller and error", async () => {
    const raw = { code: -32003, message: "Peer not connected", data: { peer_id: LOBBY.peer_id } };
    installTauri({
      [`${PREFIX}send_control_message`]: () => {
        throw raw;
      },
    });
    const { result } = await mountHook();
    let caught: unknown;
    await act(async () => {
      await result.current.sendMessage({ slide: 1 }, { to: LOBBY.peer_id }).catch((e: unknown) => {
        caught = e;
      });
    });
    expect(caught).toBeInstanceOf(WebRTCCommandError);
    const error = caught as WebRTCCommandError;
    expect(error.cause).toBe(raw);
    expect(error.code).toBe(-32003);
    expect(error.message).toBe("Peer not connected");
    expect(error.data).toEqual({ peer_id: LOBBY.peer_id });
    expect(error.command).toBe("send_control_message");
    expect(result.current.error).toBe(error);

    act(() => {
      result.current.clearError();
    });
    expect(result.current.error).toBeNull();
  });

  it("reads the plugin's error shape {kind, code, message, data}", async () => {
    const raw = { kind: "not_started", code: -32001, message: "not started: Peer not started (-32001)", data: null };
    installTauri({
      [`${PREFIX}send_control_message`]: () => {
        throw raw;
      },
    });
    const { result } = await mountHook();
    await act(async () => {
      await expect(result.current.sendMessage("x")).rejects.toMatchObject({
        kind: "not_started",
        code: -32001,
        message: "not started: Peer not started (-32001)",
        data: undefined,
        cause: raw,
      });
    });
    expect(result.current.error?.kind).toBe("not_started");
  });

  it("a failed start puts this device in error; a string error is the message", async () => {
    installTauri({
      [`${PREFIX}start_peer`]: () => {
        throw "invalid params: name: too long";
      },
    });
    const { result } = await mountHook();
    await act(async () => {
      await expect(result.current.startPeer({ name: "x".repeat(65), peer_type: "controller" })).rejects.toMatchObject({
        name: "WebRTCCommandError",
        command: "start_peer",
        message: "invalid params: name: too long",
        cause: "invalid params: name: too long",
      });
    });
    expect(result.current.connectionState).toBe("error");
    expect(result.current.error?.message).toBe("invalid params: name: too long");
  });

  it("already started: the running peer is read back instead of an error state", async () => {
    const tauri = installTauri({
      [`${PREFIX}start_peer`]: () => {
        throw { code: -32002, message: "Already started" };
      },
    });
    const { result } = await mountHook();
    tauri.set(`${PREFIX}get_leader_status`, () => ({
      state: "follower",
      leader_id: BOOTH.peer_id,
      is_leader: false,
      term: 2,
      leader: BOOTH,
      signaling_url: null,
    }));
    await act(async () => {
      await expect(result.current.startPeer({ name: "Stage", peer_type: "display", display_class: "stage" })).rejects.toMatchObject({
        code: -32002,
      });
    });
    await flush();
    expect(result.current.error?.code).toBe(-32002);
    expect(result.current.connectionState).toBe("follower");
  });

  it("errors of ping, stop and refresh reach the caller and error too", async () => {
    const tauri = installTauri({
      [`${PREFIX}ping_peer`]: () => {
        throw { code: -32001, message: "Peer not started" };
      },
      [`${PREFIX}stop_peer`]: () => {
        throw new Error("bridge gone");
      },
    });
    const { result } = await mountHook();
    await act(async () => {
      await expect(result.current.ping(STAGE.peer_id)).rejects.toMatchObject({ code: -32001, command: "ping_peer" });
    });
    expect(result.current.error?.command).toBe("ping_peer");
    await act(async () => {
      await expect(result.current.stopPeer()).rejects.toMatchObject({ message: "bridge gone", command: "stop_peer" });
    });
    expect(result.current.error?.command).toBe("stop_peer");
    tauri.set(`${PREFIX}get_connected_peers`, () => {
      throw { code: -32603, message: "Internal error" };
    });
    await act(async () => {
      await expect(result.current.refresh()).rejects.toMatchObject({ code: -32603, command: "get_connected_peers" });
    });
    expect(result.current.error?.code).toBe(-32603);
  });

  it("an error of the mount refresh is exposed, not swallowed", async () => {
    installTauri({
      [`${PREFIX}get_leader_status`]: () => {
        throw { code: -32601, message: "Method not found" };
      },
    });
    const { result } = renderHook(() => useWebRTC());
    await waitFor(() => {
      expect(result.current.error?.code).toBe(-32601);
    });
    expect(result.current.error?.command).toBe("get_leader_status");
  });
});

describe("after unmount", () => {
  it("never updates state when a command returns after unmount", async () => {
    const send = deferred<SendResult>();
    const start = deferred<PeerInfo>();
    installTauri({
      [`${PREFIX}send_control_message`]: () => send.promise,
      [`${PREFIX}start_peer`]: () => start.promise,
    });
    let renders = 0;
    const { result, unmount } = renderHook(() => {
      renders++;
      return useWebRTC();
    });
    await waitFor(() => {
      expect(result.current.subscribed).toBe(true);
    });
    await flush();
    const sending = result.current.sendMessage("late");
    let starting: Promise<PeerInfo> | undefined;
    act(() => {
      starting = result.current.startPeer({ name: "Booth", peer_type: "controller" });
    });
    await flush();
    unmount();
    const before = renders;
    const errors = vi.spyOn(console, "error");
    await act(async () => {
      send.reject({ code: -32003, message: "Peer not connected" });
      start.resolve(BOOTH);
      await expect(sending).rejects.toBeInstanceOf(WebRTCCommandError);
      await expect(starting).resolves.toEqual(BOOTH);
    });
    await flush();
    expect(renders).toBe(before);
    expect(errors).not.toHaveBeenCalled();
  });
});

describe("keyed rooms", () => {
  it("hands every room key to onRoomKey and shows the pairing window", async () => {
    const keys: [string, string][] = [];
    const window = { code: "042193", expires_at: 1796112000000, tries_left: 3, uses_left: 1 };
    const tauri = installTauri({ [`${PREFIX}open_pairing`]: () => window });
    const { result } = await mountHook({ onRoomKey: (key, reason) => keys.push([key, reason]) });
    await act(async () => {
      expect(await result.current.openPairing({ ttl_s: 60 })).toEqual(window);
    });
    expect(tauri.commands().find((c) => c.cmd.endsWith("open_pairing"))?.args).toStrictEqual({ ttl_s: 60 });
    await fire("webrtc:pairing", { state: "open", reason: "opened", window });
    expect(result.current.leader.pairing).toEqual(window);
    await fire("webrtc:pairing", { state: "closed", reason: "paired", window: null });
    expect(result.current.leader.pairing).toBeNull();
    await fire("webrtc:room_key", { room_key: "k".repeat(43), reason: "created" });
    await fire("webrtc:paired", { room: "default", room_key: "p".repeat(43) });
    await fire("webrtc:room_key", { room_key: "r".repeat(43), reason: "rotated" });
    expect(keys).toEqual([
      ["k".repeat(43), "created"],
      ["p".repeat(43), "paired"],
      ["r".repeat(43), "rotated"],
    ]);
  });
});

describe("a restart of the sidecar", () => {
  const FRESH = peer(BOOTH, { peer_id: "11111111-aaaa-4000-8000-00000000000f", started_at: 1764110009000 });

  async function runningBoothWithStage() {
    const tauri = installTauri({ [`${PREFIX}start_peer`]: () => BOOTH });
    const rendered = await mountHook();
    await act(async () => {
      await rendered.result.current.startPeer({ name: "Booth", peer_type: "controller", room: "main" });
    });
    await fire("webrtc:peer_list_changed", { peers: [BOOTH, STAGE] });
    await fire("webrtc:leader_changed", { leader_id: BOOTH.peer_id, is_leader: true, term: 1 });
    return { tauri, ...rendered };
  }

  it("forgets the old process's room, takes the new id from the rejoin, and says when it restarted", async () => {
    const { tauri, result } = await runningBoothWithStage();
    expect(result.current.connectionState).toBe("leader");
    const before = Date.now();
    await act(async () => {
      await emit(SIDECAR_EVENT, { event: "exited", exit: { code: null, signal: 9 } });
      await emit(SIDECAR_EVENT, { event: "started", pid: 42, restart: 1 });
    });
    // nothing of the dead process's room is shown as current
    expect(result.current.self).toBeNull();
    expect(result.current.peers).toEqual([]);
    expect(result.current.connectionState).toBe("starting");
    expect(result.current.restart?.count).toBe(1);
    expect(result.current.restart?.at).toBeGreaterThanOrEqual(before);

    // the new process reports its room (itself as "self") before the rejoin returns
    const stage = peer(STAGE, { connection_state: "connecting" });
    await fire("webrtc:peer_list_changed", { peers: [FRESH, stage] });
    tauri.set(`${PREFIX}get_leader_status`, () => ({
      state: "leader",
      leader_id: FRESH.peer_id,
      is_leader: true,
      term: 1,
      leader: FRESH,
      signaling_url: "ws://10.0.0.5:3010",
    }));
    tauri.set(`${PREFIX}get_connected_peers`, () => [peer(STAGE)]);
    const reads = tauri.commands().length;
    await act(async () => {
      await emit(REJOINED_EVENT, { restart: 1, peer: FRESH, error: null });
    });
    await flush();
    expect(result.current.self?.peer_id).toBe(FRESH.peer_id);
    expect(result.current.self?.name).toBe("Booth");
    expect(result.current.peers.map((p) => p.peer_id)).toEqual([FRESH.peer_id, STAGE.peer_id]);
    expect(result.current.connectedPeers.map((p) => p.peer_id)).toEqual([STAGE.peer_id]);
    expect(result.current.connectionState).toBe("leader");
    expect(result.current.leader.leaderId).toBe(FRESH.peer_id);
    // the hook read the new process's view
    expect(tauri.commands().length).toBeGreaterThan(reads);
  });

  it("a failed rejoin is an error; nothing to rejoin is idle", async () => {
    const { result } = await runningBoothWithStage();
    await act(async () => {
      await emit(SIDECAR_EVENT, { event: "started", pid: 43, restart: 1 });
      await emit(REJOINED_EVENT, {
        restart: 1,
        peer: null,
        error: { kind: "invalid_params", code: -32602, message: "bad room", data: null },
      });
    });
    expect(result.current.connectionState).toBe("error");
    expect(result.current.error?.message).toBe("bad room");
    await act(async () => {
      await emit(SIDECAR_EVENT, { event: "started", pid: 44, restart: 2 });
      await emit(REJOINED_EVENT, { restart: 2, peer: null, error: null });
    });
    expect(result.current.connectionState).toBe("idle");
    expect(result.current.restart?.count).toBe(2);
  });

  it("the first start of the sidecar is no restart", async () => {
    const { result } = await runningBoothWithStage();
    await act(async () => {
      await emit(SIDECAR_EVENT, { event: "started", pid: 41, restart: 0 });
    });
    expect(result.current.restart).toBeNull();
    expect(result.current.connectionState).toBe("leader");
  });
});
