/**
 * How `useWebRTC` reaches the peer layer: the Tauri plugin (a desktop app with
 * its sidecar), or a web peer in the page itself (a browser, a phone, a TV, a
 * Tauri mobile webview). The hook's results and events are the same over both:
 * the methods and notifications of docs/api.md.
 */
import { invoke, type InvokeArgs } from "@tauri-apps/api/core";
import { listen } from "@tauri-apps/api/event";

import type { WebPeer } from "./web/peer";

export interface PeerTransport {
  /** Call a method of docs/api.md with its params by name; resolves to its result. */
  call(method: string, params?: Record<string, unknown>): Promise<unknown>;
  /** Subscribe to a notification (`webrtc:*`); resolves to the unsubscribe function. */
  listen(event: string, handler: (payload: unknown) => void): Promise<() => void>;
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
