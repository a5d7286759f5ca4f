/**
 * How `useWebRTC` reaches the peer layer: the Tauri plugin (a desktop app with
 * its sidecar), or a web peer in the page itself (a browser, a phone, a TV, a
 * Tauri mobile webview). The hook's results and events are the same over both:
 * the methods and notifications of docs/api.md.
 */
import { invoke, type InvokeArgs } from "@tauri-apps/api/core";
import { listen } from "@tauri-apps/api/event";

import type { PeerInfo } from "./generated/sidecar-types";
import type { WebPeer } from "./web/peer";

export interface PeerTransport {
  /** Call a method of docs/api.md with its params by name; resolves to its result. */
  call(method: string, params?: Record<string, unknown>): Promise<unknown>;
  /** Subscribe to a notification (`webrtc:*`); resolves to the unsubscribe function. */
  listen(event: string, handler: (payload: unknown) => void): Promise<() => void>;
}

/**
 * The Tauri plugin's own events (not the sidecar's): the sidecar process's lifecycle, and
 * the plugin's rejoin after a restart. A web peer has no process and emits neither.
 */
export const SIDECAR_EVENT = "mobile-worship:sidecar";
export const REJOINED_EVENT = "mobile-worship:rejoined";

/** Payload of `mobile-worship:sidecar` (the Rust `SidecarEvent`). */
export type SidecarLifecycleEvent =
  | { event: "started"; pid: number | null; restart: number }
  | { event: "exited"; exit: unknown }
  | { event: "restarting"; attempt: number; delay_ms: number }
  | { event: "restart_failed"; attempt: number; error: string }
  | { event: "gave_up"; attempts: number };

/**
 * Payload of `mobile-worship:rejoined`, sent after every restart: the new process's
 * PeerInfo when the plugin called `start_peer` again with the last params, the error when
 * that failed, both null when there was nothing to rejoin.
 */
export interface RejoinedEvent {
  restart: number;
  peer: PeerInfo | null;
  /** The plugin's command error (`{kind, code, message, data}`), as a command would reject. */
  error: { kind: string; code: number | null; message: string; data: unknown } | null;
}

/** The Tauri plugin's commands (`<prefix><method>`) and events. */
export function tauriTransport(prefix: string, argsStyle: "flat" | "params"): PeerTransport {
  return {
    call: (method, params) => {
      const args: InvokeArgs | undefined =
        params === undefined ? undefined : argsStyle === "params" ? { params } : params;
      return invoke(`${prefix}${method}`, args);
    },
    listen: async (event, handler) => {
      const unlisten = await listen(event, (e) => {
        handler(e.payload);
      });
      return unlisten;
    },
  };
}

/** A web peer in this page (sidecar-less: it joins the room over the network itself). */
export function webPeerTransport(peer: WebPeer): PeerTransport {
  return {
    call: (method, params) => peer.call(method, params ?? {}),
    listen: (event, handler) => Promise.resolve(peer.on(event, handler)),
  };
}
