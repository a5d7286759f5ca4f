/**
 * Test helpers: the Tauri IPC mocked with @tauri-apps/api/mocks (events included),
 * a record of every invoke, and PeerInfo fixtures.
 */
import { act } from "@testing-library/react";
import type { InvokeArgs } from "@tauri-apps/api/core";
import { emit } from "@tauri-apps/api/event";
import { mockIPC } from "@tauri-apps/api/mocks";

import type { LeaderStatus, PeerInfo } from "../src/generated/sidecar-types";
import type { WebRTCEventName, WebRTCEventPayloads } from "../src/useWebRTC";

export const PREFIX = "plugin:mobile-worship|";

export interface IpcCall {
  cmd: string;
  args: unknown;
}

export type Handler = (args: Record<string, unknown>) => unknown;

interface TauriInternals {
  invoke: (cmd: string, args?: InvokeArgs, options?: unknown) => Promise<unknown>;
}

export const IDLE_STATUS: LeaderStatus = {
  state: "idle",
  leader_id: null,
  is_leader: false,
  term: 0,
  leader: null,
  signaling_url: null,
};

/**
 * Mocks the IPC: `handlers` answer the commands by full name (a missing one rejects, as
 * Tauri does for an unknown command); `plugin:event|*` is the mock's own event bus.
 * Every invoke, event plumbing included, lands in `calls`.
 */
export function installTauri(handlers: Record<string, Handler> = {}) {
  const calls: IpcCall[] = [];
  const all: Record<string, Handler> = {
    [`${PREFIX}get_leader_status`]: () => IDLE_STATUS,
    [`${PREFIX}get_connected_peers`]: () => [],
    [`${PREFIX}get_state`]: () => [],
    ...handlers,
  };
  mockIPC(
    (cmd, args) => {
      const handler = all[cmd];
      if (!handler) throw new Error(`command ${cmd} not found`);
      return handler((args ?? {}) as Record<string, unknown>);
    },
    { shouldMockEvents: true },
  );
  // mockIPC installs window.__TAURI_INTERNALS__.invoke; wrap it to record every call.
  const internals = (window as unknown as { __TAURI_INTERNALS__: TauriInternals }).__TAURI_INTERNALS__;
  const mocked = internals.invoke;
  internals.invoke = (cmd, args, options) => {
    calls.push({ cmd, args });
    return mocked(cmd, args, options);
  };
  const named = (cmd: string) => calls.filter((c) => c.cmd === cmd);
  return {
    calls,
    /** The calls of the bridge's commands (no event plumbing). */
    commands: () => calls.filter((c) => !c.cmd.startsWith("plugin:event|")),
    listens: () => named("plugin:event|listen"),
    unlistens: () => named("plugin:event|unlisten"),
    set(cmd: string, handler: Handler) {
      all[cmd] = handler;
    },
  };
}

/** Emits a Tauri event through the mock, inside act(). */
export async function fire<E extends WebRTCEventName>(event: E, payload: WebRTCEventPayloads[E]): Promise<void> {
  await act(async () => {
    await emit(event, payload);
  });
}

export interface Deferred<T> {
  promise: Promise<T>;
  resolve: (value: T) => void;
  reject: (reason: unknown) => void;
}

export function deferred<T>(): Deferred<T> {
  let resolve!: (value: T) => void;
  let reject!: (reason: unknown) => void;
  const promise = new Promise<T>((res, rej) => {
    resolve = res;
    reject = rej;
  });
  return { promise, resolve, reject };
}

/** Lets pending promise callbacks (the mocked IPC is async) run, inside act(). */
export async function flush(): Promise<void> {
  await act(async () => {
    for (let i = 0; i < 5; i++) await Promise.resolve();
    await new Promise((r) => setTimeout(r, 0));
  });
}

export const BOOTH: PeerInfo = {
  peer_id: "11111111-aaaa-4000-8000-000000000001",
  name: "Booth",
  peer_type: "controller",
  display_class: null,
  started_at: 1764110000000,
  is_leader: true,
  connection_state: "self",
};

export const STAGE: PeerInfo = {
  peer_id: "22222222-bbbb-4000-8000-000000000002",
  name: "Stage left",
  peer_type: "display",
  display_class: "stage",
  started_at: 1764110000500,
  is_leader: false,
  connection_state: "connected",
};

export const LOBBY: PeerInfo = {
  peer_id: "33333333-cccc-4000-8000-000000000003",
  name: "Lobby TV",
  peer_type: "display",
  display_class: "lobby",
  started_at: 1764110000900,
  is_leader: false,
  connection_state: "connecting",
};

export function peer(base: PeerInfo, changes: Partial<PeerInfo> = {}): PeerInfo {
  return { ...base, ...changes };
}
