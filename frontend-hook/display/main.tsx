// The display page every desktop peer serves (sidecar/net/signaling/static.py): a
// browser, phone or TV opens http://<any device>:<port>/#name=…&class=…[&room=…]
// and joins the room as a web peer (frontend-hook/src/web), through the same hook
// as a desktop app.
//
// A keyed room is entered by pairing with the device that served the page: type
// the six digits a member shows (a TV with a remote), or open the member's pairing
// link (a QR code: `#pair=<one-time token>`). The room key is then kept in this
// browser's storage for the next visits (./roomkeys.ts); any secret in the address
// (`pair`, or a `key` given by hand) is taken out of it at once.
import { StrictMode, useCallback, useEffect, useMemo, useRef, useState, type SyntheticEvent } from "react";
import { createRoot } from "react-dom/client";

import { ConnectionStatus } from "../src/ConnectionStatus";
import "../src/ConnectionStatus.css";
import { WebRTCCommandError } from "../src/errors";
import type { DisplayClass, StartPeerParams } from "../src/generated/sidecar-types";
import { webPeerTransport } from "../src/transport";
import { useWebRTC } from "../src/useWebRTC";
import { WebPeer } from "../src/web/peer";
import "./display.css";
import { forgetRoomKey, readRoomKey, storeRoomKey } from "./roomkeys";

const CLASSES: readonly DisplayClass[] = ["audience", "stage", "lobby"];
const SECRETS = ["key", "pair"];

interface Fragment {
  params: StartPeerParams;
  echo: boolean;
  token: string | null;
  key: string | null;
}

/** What the address asks for; the secrets in it are stored or kept in memory, and
 * taken out of the address bar and the history entry at once. */
function takeFragment(): Fragment {
  const q = new URLSearchParams(location.hash.slice(1));
  const chosen = q.get("class") ?? "audience";
  const displayClass: DisplayClass = (CLASSES as readonly string[]).includes(chosen) ? (chosen as DisplayClass) : "audience";
  const room = q.get("room") ?? "default";
  const params: StartPeerParams = {
    name: (q.get("name") ?? "").slice(0, 64) || `Browser ${displayClass}`,
    peer_type: "display",
    display_class: displayClass,
    room,
  };
  const key = q.get("key"); // kept only once it opened the room (a crafted link cannot replace a good key)
  const token = q.get("pair");
  if (SECRETS.some((s) => q.has(s))) {
    for (const s of SECRETS) q.delete(s);
    const rest = q.toString();
    history.replaceState(history.state, "", `${location.pathname}${location.search}${rest ? `#${rest}` : ""}`);
  }
  return { params, echo: q.get("echo") === "1", token, key };
}

function show(payload: unknown): string {
  if (typeof payload === "string") return payload;
  return JSON.stringify(payload, null, 2);
}

type Step = { kind: "joining" } | { kind: "code"; why: string } | { kind: "in" };

/** What the page should do after a failed start: ask for the code (and say why), or try again. */
function afterFailure(err: unknown, host: string): Step | null {
  if (!(err instanceof WebRTCCommandError)) return null;
  const data = (err.data ?? {}) as { reason?: string; code?: string };
  if (data.reason === "needs_key") return { kind: "code", why: "This room is private. Enter the six-digit code shown on a device of the room." };
  if (data.reason === "key_refused") return { kind: "code", why: "This screen's key to the room no longer works (it was changed). Enter a new code to join again." };
  if (err.code !== -32005) return null;
  switch (data.code) {
    case "token_spent":
      return { kind: "code", why: "This pairing link was already used or has expired. Ask for a new one, or enter the six-digit code." };
    case "wrong_code":
      return { kind: "code", why: "That code is not right. Check the code on the device and try again." };
    case "too_many_tries":
      return { kind: "code", why: "Too many tries from this screen. Ask for a new code." };
    case "pairing_closed":
      return { kind: "code", why: `No pairing is open on ${host}. Open pairing on that device, then enter its code.` };
    default:
      return { kind: "code", why: `Pairing did not work: ${err.message}` };
  }
}

const FRAGMENT = takeFragment(); // once, before anything renders

function Display() {
  const fragment = FRAGMENT;
  const { params, echo } = fragment;
  const room = params.room ?? "default";
  const token = useRef(fragment.token);
  const handKey = useRef(fragment.key);
  const peer = useMemo(() => new WebPeer({ url: `ws://${location.host}/signal` }), []);
  const transport = useMemo(() => webPeerTransport(peer), [peer]);
  const onRoomKey = useCallback(
    (roomKey: string) => {
      storeRoomKey(room, roomKey);
    },
    [room],
  );
  const webrtc = useWebRTC({ transport, maxMessages: 20, refreshOnMount: false, onRoomKey });
  const [problem, setProblem] = useState<string | null>(null);
  const [step, setStep] = useState<Step>({ kind: "joining" });
  const [code, setCode] = useState("");
  const starting = useRef(false);
  const retry = useRef<ReturnType<typeof setTimeout> | null>(null);
  const { startPeer, stopPeer, connectionState } = webrtc;

  const join = useCallback(
    (pairingCode?: string) => {
      if (starting.current) return;
      starting.current = true;
      if (retry.current !== null) clearTimeout(retry.current);
      const start: StartPeerParams = { ...params, echo };
      const link = token.current;
      const given = handKey.current;
      token.current = null; // one use, whatever happens
      handKey.current = null;
      if (pairingCode) start.pairing_code = pairingCode;
      else if (link) start.pairing_token = link;
      else {
        const key = given ?? readRoomKey(room);
        if (key) start.room_key = key;
      }
      setStep({ kind: "joining" });
      startPeer(start)
        .then(
          () => {
            if (given && !pairingCode && !link) storeRoomKey(room, given); // it opened the room
            setProblem(null);
            setStep({ kind: "in" });
          },
          (err: unknown) => {
            // A refused key stays kept (a refusal may be forged, or come from a device
            // that missed a rotation): a pairing replaces it, "Forget" removes it.
            const next = afterFailure(err, location.host);
            if (next) {
              setProblem(null);
              setStep(next);
              return;
            }
            setProblem(err instanceof Error ? err.message : String(err));
            retry.current = setTimeout(() => {
              join();
            }, 2000);
          },
        )
        .finally(() => {
          starting.current = false;
        });
    },
    [params, echo, room, startPeer],
  );

  // Join, and join again after a phone's sleep or a tab in the background.
  useEffect(() => {
    join();
    const onVisible = () => {
      if (document.visibilityState === "visible" && peer.needsRestart) {
        void stopPeer()
          .catch(() => undefined)
          .then(() => {
            join();
          });
      }
    };
    document.addEventListener("visibilitychange", onVisible);
    (window as unknown as { __mw: unknown }).__mw = { peer };
    const offRevoked = peer.on("mobile-worship:page_device_revoked", () => {
      forgetRoomKey(room);
      setStep({
        kind: "code",
        why: "The device this page came from was removed from the room. Open the page from another device of the room.",
      });
    });
    return () => {
      offRevoked();
      document.removeEventListener("visibilitychange", onVisible);
      if (retry.current !== null) clearTimeout(retry.current);
    };
  }, [join, peer, room, stopPeer]);

  // Keep the screen awake where the browser allows it.
  useEffect(() => {
    if ("wakeLock" in navigator) navigator.wakeLock.request("screen").catch(() => undefined);
  }, [connectionState]);

  const submit = (e: SyntheticEvent) => {
    e.preventDefault();
    if (/^[0-9]{6}$/.test(code)) {
      join(code);
      setCode("");
    }
  };

  const forget = () => {
    forgetRoomKey(room);
    void stopPeer()
      .catch(() => undefined)
      .then(() => {
        setStep({ kind: "code", why: "This screen forgot the room. Enter a code to join it again." });
      });
  };

  const keyed = webrtc.leader.keyed;
  const last = webrtc.messages.at(-1);
  const state = Object.values(webrtc.state);
  return (
    <main className="mw-display">
      {step.kind === "code" ? (
        <form className="mw-display__pair" onSubmit={submit} aria-label="Join the room">
          <p role="status">{step.why}</p>
          <label>
            Code
            <input
              id="pairing-code"
              inputMode="numeric"
              autoComplete="one-time-code"
              pattern="[0-9]{6}"
              maxLength={6}
              autoFocus
              value={code}
              onChange={(e) => {
                setCode(e.target.value.replace(/[^0-9]/g, "").slice(0, 6));
              }}
            />
          </label>
          <button type="submit" disabled={code.length !== 6}>
            Join
          </button>
        </form>
      ) : (
        <section className="mw-display__now" aria-label="Now showing">
          {last ? <pre id="last-message">{show(last.payload)}</pre> : <p className="mw-display__idle">Waiting for the first cue…</p>}
        </section>
      )}
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
        {step.kind === "in" && keyed === false ? (
          <p className="mw-display__open" role="note">
            Open room: any device on this network can join it and put text on this screen.
          </p>
        ) : null}
        <button type="button" onClick={() => void document.documentElement.requestFullscreen().catch(() => undefined)}>
          Full screen
        </button>
        {step.kind === "in" && keyed ? (
          <button type="button" id="forget-room" onClick={forget}>
            Forget this room
          </button>
        ) : null}
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
