// How the example's page reaches the room: the one place that decides it
// (tauri-bridge/README.md, "On iOS and Android: the web peer").
//
// - "plugin": a Tauri desktop app. The mobile-worship plugin runs the sidecar; the hook
//   calls its commands (`plugin:mobile-worship|<method>`) and hears its events.
// - "web": no sidecar (a Tauri iOS or Android app, or the page opened in a browser). A
//   WebPeer in the page joins the room through a signaling server of a device that runs
//   one (`ws://<device>:3010/signal`), with the browser's own WebRTC.
import { WebPeer, webPeerTransport, type PeerTransport } from "../../../frontend-hook/src";

export type PeerMode = "plugin" | "web";

/** What the build says (Vite's `import.meta.env`, see vite.config.ts: `envPrefix`). */
export interface BuildFlags {
  /** `web` or `plugin`: forces the mode (`VITE_PEER=web npm run build`). */
  VITE_PEER?: string;
  /** Set by the Tauri CLI for `beforeBuildCommand` (`tauri android build`, `tauri ios build`). */
  TAURI_ENV_PLATFORM?: string;
}

/**
 * The rule, first match wins:
 * 1. `VITE_PEER=web` or `VITE_PEER=plugin` at build time;
 * 2. a build for `android` or `ios` (`TAURI_ENV_PLATFORM`, which the Tauri CLI sets when it
 *    runs `npm run build` for a mobile target): web, as a phone runs no sidecar;
 * 3. at run time, a Tauri webview (`__TAURI_INTERNALS__` is defined): the plugin;
 *    anything else (a browser): web.
 */
export function peerMode(build: BuildFlags = import.meta.env, page: object = globalThis): PeerMode {
  if (build.VITE_PEER === "web" || build.VITE_PEER === "plugin") return build.VITE_PEER;
  if (build.TAURI_ENV_PLATFORM === "android" || build.TAURI_ENV_PLATFORM === "ios") return "web";
  return "__TAURI_INTERNALS__" in page ? "plugin" : "web";
}

/** A sidecar's signaling port unless one is given (docs/api.md, `signaling_port`). */
export const SIGNALING_PORT = 3010;

/**
 * The signaling URL of a device, from its address as a person types it or a link gives it:
 * `10.0.0.5`, `10.0.0.5:3010`, `ws://10.0.0.5:3010/signal`, or the display page's address
 * a device shows (`http://10.0.0.5:3010/`). No port: 3010. Null when it is none of those.
 */
export function signalingUrl(address: string): string | null {
  const text = address.trim();
  if (text === "") return null;
  let url: URL;
  try {
    url = new URL(/^[a-z][a-z0-9+.-]*:\/\//i.test(text) ? text : `ws://${text}`);
  } catch {
    return null;
  }
  if ((url.protocol !== "ws:" && url.protocol !== "http:") || url.hostname === "") return null;
  if (url.username !== "" || url.password !== "") return null;
  return `ws://${url.hostname}:${url.port || String(SIGNALING_PORT)}/signal`;
}

/** `host:port` of a signaling URL, for people to read. */
export function deviceOf(signal: string): string {
  return new URL(signal).host;
}

const LAST_DEVICE = "mobile-worship:signal";

/**
 * Where the page joins the room in web mode, first found wins: the address fragment
 * (`#signal=10.0.0.5:3010`, any form `signalingUrl` reads; an app may open its page so),
 * then the device this page joined through last time (kept in local storage), else none:
 * the page asks for a device's address.
 */
export function initialSignal(hash: string = location.hash): string | null {
  const given = new URLSearchParams(hash.replace(/^#/, "")).get("signal");
  if (given !== null) return signalingUrl(given);
  try {
    const kept = localStorage.getItem(LAST_DEVICE);
    return kept === null ? null : signalingUrl(kept);
  } catch {
    return null; // no storage (a private window): ask
  }
}

/** Keeps the device this page joined through, for the next start. */
export function rememberSignal(signal: string | null): void {
  try {
    if (signal === null) localStorage.removeItem(LAST_DEVICE);
    else localStorage.setItem(LAST_DEVICE, signal);
  } catch {
    // not kept: the page asks again next time
  }
}

/** A web peer joining through `signal`, and the hook's transport over it. */
export function webBackend(signal: string): { peer: WebPeer; transport: PeerTransport } {
  const peer = new WebPeer({ url: signal });
  return { peer, transport: webPeerTransport(peer) };
}
