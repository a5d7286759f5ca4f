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
//
// What it shows: the latest cue, as large as fits (./cue.ts has the payload's
// convention), and out of the way at the bottom, small, the room's retained state and
// one line of status worded for a volunteer; the status stands out only when
// something needs a person (an error, an open room, a lost booth).
import {
  Fragment,
  StrictMode,
  useCallback,
  useEffect,
  useLayoutEffect,
  useMemo,
  useRef,
  useState,
  type SyntheticEvent,
} from "react";
import { createRoot } from "react-dom/client";

import { ConnectionStatus, displaySummary } from "../src/ConnectionStatus";
import "../src/ConnectionStatus.css";
import { SidecarErrorCode, WebRTCCommandError } from "../src/errors";
import type { DisplayClass, MessageParams, StartPeerParams } from "../src/generated/sidecar-types";
import { webPeerTransport } from "../src/transport";
import { useWebRTC } from "../src/useWebRTC";
import { WebPeer } from "../src/web/peer";
import { cueOf, fitFontSize, plainText } from "./cue";
import "./display.css";
import { forgetRoomKey, readRoomKey, storeRoomKey } from "./roomkeys";
import { relayNote, wakeNote, type WakeState } from "./status";

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

const MIN_PX = 12;

function px(value: string): number {
  return Number.parseFloat(value) || 0;
}

/** Sets the cue's font size to the largest at which it fits its stage: first with each
 * line kept whole (lyrics), and when that is too small to read, with lines wrapping. */
function fit(cue: HTMLElement, stage: HTMLElement): boolean {
  const box = getComputedStyle(stage);
  const width = stage.clientWidth - px(box.paddingLeft) - px(box.paddingRight);
  const height = stage.clientHeight - px(box.paddingTop) - px(box.paddingBottom);
  if (width <= 0 || height <= 0) return false;
  const hi = Math.max(MIN_PX, Math.min(width / 7, height / 4));
  const fits = (size: number) => {
    cue.style.fontSize = `${String(size)}px`;
    return cue.scrollHeight <= height + 0.5 && cue.scrollWidth <= cue.clientWidth + 0.5;
  };
  // data-wrap: how lines may break (display.css): "no" each line whole, "words", "anywhere"
  cue.dataset.wrap = "no";
  let size = fitFontSize(fits, MIN_PX, hi);
  if (size < Math.max(24, height / 18) || !fits(size)) {
    cue.dataset.wrap = "words";
    size = fitFontSize(fits, MIN_PX, hi);
    if (!fits(size)) {
      cue.dataset.wrap = "anywhere"; // a word wider than the screen even at the smallest size
      size = fitFontSize(fits, MIN_PX, hi);
    }
  }
  cue.style.fontSize = `${String(size)}px`;
  return true;
}

/** The latest cue, as large as fits the space left to it. */
function Cue({ message }: { message: MessageParams }) {
  const cue = useMemo(() => cueOf(message.payload), [message.payload]);
  const ref = useRef<HTMLDivElement>(null);
  const id = message.message_id;
  useLayoutEffect(() => {
    const el = ref.current;
    const stage = el?.parentElement;
    if (!el || !stage) return;
    const refit = () => {
      // data-fit: which cue was fitted at which viewport (tests wait for it)
      if (fit(el, stage)) el.dataset.fit = `${id}@${String(innerWidth)}x${String(innerHeight)}`;
    };
    refit();
    const watch = new ResizeObserver(refit);
    watch.observe(stage);
    return () => {
      watch.disconnect();
    };
  }, [cue, id]);
  return (
    <div id="last-message" className="mw-cue" ref={ref} data-cue={id}>
      {cue.title !== null ? <p className="mw-cue__title">{cue.title}</p> : null}
      {cue.lines.length > 0 ? (
        <p className="mw-cue__body">
          {cue.lines.map((line, i) => (
            // a line break between lines: the element's text is the payload's ("a\nb")
            <Fragment key={i}>
              {i > 0 ? "\n" : null}
              <span className="mw-cue__line">
                {line.label !== null ? <span className="mw-cue__label">{line.label}: </span> : null}
                {line.text}
              </span>
            </Fragment>
          ))}
        </p>
      ) : null}
    </div>
  );
}

/** The screen wake lock where the browser gives one, asked for again whenever the page
 * is shown (a browser releases it when the page is hidden); its state for the status. */
function useWakeLock(): WakeState {
  const [wake, setWake] = useState<WakeState>("pending");
  useEffect(() => {
    // absent on pages that are not a secure context (http from a LAN address)
    const lock = (navigator as Partial<Navigator>).wakeLock;
    if (!lock) {
      setWake("unavailable");
      return;
    }
    let held: WakeLockSentinel | null = null;
    let asking = false;
    let gone = false;
    const ask = () => {
      if (gone || asking || document.visibilityState !== "visible" || (held && !held.released)) return;
      asking = true;
      lock.request("screen").then(
        (sentinel) => {
          asking = false;
          if (gone) {
            void sentinel.release().catch(() => undefined);
            return;
          }
          held = sentinel;
          setWake("held");
          sentinel.addEventListener("release", () => {
            if (!gone) setWake("released");
          });
        },
        () => {
          asking = false;
          if (!gone) setWake("refused");
        },
      );
    };
    ask();
    const onVisible = () => {
      if (document.visibilityState === "visible") ask();
    };
    document.addEventListener("visibilitychange", onVisible);
    return () => {
      gone = true;
      document.removeEventListener("visibilitychange", onVisible);
      if (held && !held.released) void held.release().catch(() => undefined);
    };
  }, []);
  return wake;
}

/** Whether a channel of the page goes through the leader's relay. The peer tells no
 * event when a channel moves between the relay and a direct path: it is looked at
 * whenever the room changes, and every two seconds. */
function useRelayed(peer: WebPeer, peers: unknown): boolean {
  const [relayed, setRelayed] = useState(false);
  useEffect(() => {
    const look = () => {
      setRelayed(peer.connectedPeers().some((p) => p.via === "relay"));
    };
    look();
    const every = setInterval(look, 2000);
    return () => {
      clearInterval(every);
    };
  }, [peer, peers]);
  return relayed;
}

const HAS_WEBRTC = typeof RTCPeerConnection !== "undefined";

function cx(...names: (string | false | null | undefined)[]): string {
  return names.filter(Boolean).join(" ");
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
  const { startPeer, stopPeer, clearError } = webrtc;

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
            clearError(); // a refused code or a failed try before this one is over
            setStep({ kind: "in" });
          },
          (err: unknown) => {
            // A refused key stays kept (a refusal may be forged, or come from a device
            // that missed a rotation): a pairing replaces it, "Forget" removes it.
            if (err instanceof WebRTCCommandError && err.code === SidecarErrorCode.AlreadyStarted) {
              // Started already (a second start raced the first): the page is in the room.
              clearError();
              setStep({ kind: "in" });
              return;
            }
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
    [params, echo, room, startPeer, clearError],
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

  const wake = useWakeLock(); // keep the screen awake where the browser allows it
  const relayed = useRelayed(peer, webrtc.peers);
  const [fullScreen, setFullScreen] = useState(false);
  useEffect(() => {
    const onChange = () => {
      setFullScreen(Boolean(document.fullscreenElement));
    };
    document.addEventListener("fullscreenchange", onChange);
    return () => {
      document.removeEventListener("fullscreenchange", onChange);
    };
  }, []);

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
  const joined = step.kind === "in";
  const openRoom = joined && keyed === false;
  const notes = [joined ? relayNote(relayed, HAS_WEBRTC) : null, wakeNote(wake)].filter((n) => n !== null);
  // what needs a person: a failure, an open room, no network, a booth that was there and is lost
  const summary = displaySummary(webrtc.connectionState, webrtc.peers, webrtc.self?.peer_id ?? null);
  const attention = problem !== null || openRoom || webrtc.error !== null || summary.tone === "attention";
  return (
    <main className={cx("mw-display", attention && "mw-display--attention")}>
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
        <section className="mw-display__now" aria-label="Now showing" aria-live="polite">
          {last ? <Cue key={last.message_id} message={last} /> : <p className="mw-display__idle">Waiting for the first cue…</p>}
        </section>
      )}
      <footer className="mw-display__bar">
        {state.length > 0 ? (
          <dl className="mw-display__state" aria-label="Room state">
            {state.map((e) => (
              <div key={e.key}>
                <dt>{e.key}</dt>
                <dd data-key={e.key}>{plainText(e.value)}</dd>
              </div>
            ))}
          </dl>
        ) : null}
        <div className="mw-display__status">
          {problem ? (
            <p role="alert" className="mw-display__problem">
              Cannot join yet: {problem}
            </p>
          ) : null}
          {openRoom ? (
            <p className="mw-display__open" role="note">
              Open room: any device on this network can join it and put text on this screen.
            </p>
          ) : null}
          <ConnectionStatus {...webrtc} title="This display" variant="display" mesh="controllers" />
          {notes.map((note) => (
            <p key={note} className="mw-display__note">
              {note}
            </p>
          ))}
          <div className="mw-display__actions">
            {fullScreen ? null : (
              <button type="button" onClick={() => void document.documentElement.requestFullscreen().catch(() => undefined)}>
                Full screen
              </button>
            )}
            {joined && keyed ? (
              <button type="button" id="forget-room" onClick={forget}>
                Forget this room
              </button>
            ) : null}
          </div>
        </div>
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
