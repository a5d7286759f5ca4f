// The display page every desktop peer serves (sidecar/net/signaling/static.py): a
// browser, phone or TV opens http://<any device>:<port>/#name=…&class=…[&room=…][&key=…]
// and joins the room as a web peer (frontend-hook/src/web), through the same hook
// as a desktop app. The room key, if any, stays in the URL fragment: never sent.
import { StrictMode, useEffect, useMemo, useRef, useState } from "react";
import { createRoot } from "react-dom/client";

import { ConnectionStatus } from "../src/ConnectionStatus";
import "../src/ConnectionStatus.css";
import type { DisplayClass, StartPeerParams } from "../src/generated/sidecar-types";
import { webPeerTransport } from "../src/transport";
import { useWebRTC } from "../src/useWebRTC";
import { WebPeer } from "../src/web/peer";
import "./display.css";

const CLASSES: readonly DisplayClass[] = ["audience", "stage", "lobby"];

function fromFragment(): { params: StartPeerParams; echo: boolean } {
  const q = new URLSearchParams(location.hash.slice(1));
  const chosen = q.get("class") ?? "audience";
  const displayClass: DisplayClass = (CLASSES as readonly string[]).includes(chosen) ? (chosen as DisplayClass) : "audience";
  const params: StartPeerParams = {
    name: (q.get("name") ?? "").slice(0, 64) || `Browser ${displayClass}`,
    peer_type: "display",
    display_class: displayClass,
    room: q.get("room") ?? "default",
  };
  const key = q.get("key");
  if (key) params.room_key = key;
  return { params, echo: q.get("echo") === "1" };
}

function show(payload: unknown): string {
  if (typeof payload === "string") return payload;
  return JSON.stringify(payload, null, 2);
}

function Display() {
  const { params, echo } = useMemo(fromFragment, []);
  const peer = useMemo(() => new WebPeer({ url: `ws://${location.host}/signal` }), []);
  const transport = useMemo(() => webPeerTransport(peer), [peer]);
  const webrtc = useWebRTC({ transport, maxMessages: 20, refreshOnMount: false });
  const [problem, setProblem] = useState<string | null>(null);
  const starting = useRef(false);
  const { startPeer, stopPeer, connectionState } = webrtc;

  // Join, and join again after a phone's sleep or a tab in the background.
  useEffect(() => {
    const join = () => {
      if (starting.current) return;
      starting.current = true;
      startPeer({ ...params, echo }).then(
        () => {
          setProblem(null);
        },
        (err: unknown) => {
          setProblem(err instanceof Error ? err.message : String(err));
          setTimeout(join, 2000);
        },
      ).finally(() => {
        starting.current = false;
      });
    };
    join();
    const onVisible = () => {
      if (document.visibilityState === "visible" && peer.needsRestart) {
        void stopPeer().catch(() => undefined).then(join);
      }
    };
    document.addEventListener("visibilitychange", onVisible);
    (window as unknown as { __mw: unknown }).__mw = { peer };
    return () => {
      document.removeEventListener("visibilitychange", onVisible);
    };
  }, [params, echo, peer, startPeer, stopPeer]);

  // Keep the screen awake where the browser allows it.
  useEffect(() => {
    if ("wakeLock" in navigator) navigator.wakeLock.request("screen").catch(() => undefined);
  }, [connectionState]);

  const last = webrtc.messages.at(-1);
  const state = Object.values(webrtc.state);
  return (
    <main className="mw-display">
      <section className="mw-display__now" aria-label="Now showing">
        {last ? <pre id="last-message">{show(last.payload)}</pre> : <p className="mw-display__idle">Waiting for the first cue…</p>}
      </section>
      {state.length > 0 ? (
        <dl className="mw-display__state" aria-label="Room state">
          {state.map((e) => (
            <div key={e.key}>
              <dt>{e.key}</dt>
              <dd data-key={e.key}>{show(e.value)}</dd>
            </div>
          ))}
        </dl>
      ) : null}
      <footer className="mw-display__status">
        {problem ? <p role="alert">Cannot join yet: {problem}</p> : null}
        <button type="button" onClick={() => void document.documentElement.requestFullscreen().catch(() => undefined)}>
          Full screen
        </button>
        <ConnectionStatus {...webrtc} title="This display" />
      </footer>
    </main>
  );
}

const root = document.getElementById("root");
if (!root) throw new Error("#root is missing");
createRoot(root).render(
  <StrictMode>
    <Display />
  </StrictMode>,
);
