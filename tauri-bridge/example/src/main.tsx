// The example's page: the useWebRTC hook and the ConnectionStatus panel of frontend-hook/.
// In a Tauri desktop app it runs over the plugin's commands (`plugin:mobile-worship|<method>`)
// and `webrtc:*` events; with no sidecar (a Tauri iOS or Android app, or the page opened in
// a browser) over a web peer in the page. ./transport.ts decides which.
import { StrictMode, useCallback, useEffect, useMemo, useRef, useState, type FormEvent } from "react";
import { createRoot } from "react-dom/client";

import {
  ConnectionStatus,
  DISPLAY_CLASS_LABELS,
  useWebRTC,
  WebRTCCommandError,
  type DisplayClass,
  type PeerTransport,
  type PeerType,
  type StartPeerParams,
  type WebPeer,
} from "../../../frontend-hook/src";
import "../../../frontend-hook/src/ConnectionStatus.css";
import qrcode from "qrcode-generator";
import { roomKeys, type RoomKeys } from "./roomkeys";
import "./style.css";
import {
  deviceOf,
  initialSignal,
  peerMode,
  rememberSignal,
  signalingUrl,
  webBackend,
  type PeerMode,
} from "./transport";

const DISPLAY_CLASSES = Object.keys(DISPLAY_CLASS_LABELS) as DisplayClass[];
const ROOM = "default";
const MODE: PeerMode = peerMode();

/** How this device enters the room: the key it kept, a new room, a member's code, or
 * (deliberately) an open room that any device on the network may join. A web peer cannot
 * start a room: it never leads (it serves nothing), so "new" is offered with the plugin only. */
type Entry = "saved" | "new" | "code" | "open";

/** How the page reaches the room (./transport.ts) and where it keeps room keys. */
interface Backend {
  keys: RoomKeys;
  /** In web mode: the page's peer, the hook's transport over it, and the device it joins through. */
  web: { peer: WebPeer; transport: PeerTransport; signal: string } | null;
}

/** The display page as a QR code (a data: URL of a GIF), for a phone's camera. */
function qrDataUrl(text: string): string {
  const qr = qrcode(0, "M");
  qr.addData(text);
  qr.make();
  return qr.createDataURL(4, 8);
}

function describe(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}

/** What a web peer's refused start means to a person (the page then asks for a code). */
function refusal(err: unknown, device: string): string | null {
  if (!(err instanceof WebRTCCommandError)) return null;
  const data = (err.data ?? {}) as { reason?: string; code?: string };
  if (data.reason === "needs_key") return "this room is keyed: join with a code shown on a device of the room";
  if (data.reason === "key_refused") return "the room no longer takes this device's key (it was changed): join with a new code";
  if (err.code !== -32005) return null;
  switch (data.code) {
    case "wrong_code":
      return "that code is not right: check the code on the device and try again";
    case "too_many_tries":
      return "too many tries from this device: ask for a new code";
    case "pairing_closed":
      return `no pairing is open on ${device}: open pairing on that device, then enter its code`;
    default:
      return `pairing did not work: ${err.message}`;
  }
}

/** Parses the cue as JSON if it is JSON, else sends it as a string. */
function parseCue(text: string): unknown {
  try {
    return JSON.parse(text) as unknown;
  } catch {
    return text;
  }
}

function App({ backend, changeDevice }: { backend: Backend; changeDevice?: () => void }) {
  const { keys, web } = backend;
  const onRoomKey = useCallback(
    (key: string) => {
      keys.keep(ROOM, key);
    },
    [keys],
  );
  const webrtc = useWebRTC(web ? { transport: web.transport, onRoomKey } : { onRoomKey });
  const [name, setName] = useState("Booth");
  const [peerType, setPeerType] = useState<PeerType>("controller");
  const [displayClass, setDisplayClass] = useState<DisplayClass>("audience");
  const [cue, setCue] = useState('{"slide": 1}');
  const [target, setTarget] = useState<DisplayClass | "all">("all");
  const [stateKey, setStateKey] = useState("slide");
  const [stateValue, setStateValue] = useState('{"song": "Amazing Grace", "verse": 1}');
  const [log, setLog] = useState<{ id: number; text: string; error: boolean }[]>([]);
  const [savedKey, setSavedKey] = useState<string | null>(null);
  const [entry, setEntry] = useState<Entry>("code");
  const [code, setCode] = useState("");
  /** What the last start asked for (web mode: to join again after a phone's sleep). */
  const lastStart = useRef<StartPeerParams | null>(null);

  // A key kept by an earlier run: this device rejoins its room without pairing.
  useEffect(() => {
    keys.saved(ROOM).then(
      (key) => {
        setSavedKey(key);
        if (key) setEntry("saved");
      },
      () => undefined,
    );
  }, [keys]);

  const note = useCallback((text: string, error = false) => {
    const line = { id: Date.now() + Math.random(), text: `${new Date().toLocaleTimeString()}  ${text}`, error };
    setLog((old) => [line, ...old].slice(0, 20));
  }, []);
  /** Runs a command and logs its outcome (the hook also keeps the last error in `error`). */
  const run = useCallback(
    (what: string, action: () => Promise<string>) => {
      action().then(
        (text) => {
          note(text);
        },
        (err: unknown) => {
          note(`${what}: ${describe(err)}`, true);
        },
      );
    },
    [note],
  );

  // A web peer: join again when the page comes back without its leader (a phone's sleep,
  // an app in the background), and say so when the device it joins through is shut out.
  const { startPeer, stopPeer } = webrtc;
  useEffect(() => {
    if (!web) return;
    const onVisible = () => {
      const last = lastStart.current;
      if (document.visibilityState !== "visible" || !web.peer.needsRestart || !last) return;
      run("join again", async () => {
        await stopPeer().catch(() => undefined);
        const key = await keys.saved(ROOM);
        await startPeer({ ...last, pairing_code: null, pairing_token: null, room_key: key });
        return "joined the room again";
      });
    };
    document.addEventListener("visibilitychange", onVisible);
    const offRevoked = web.peer.on("mobile-worship:page_device_revoked", () => {
      note(`${deviceOf(web.signal)} was removed from the room, so this device left it: connect through another device`, true);
    });
    return () => {
      offRevoked();
      document.removeEventListener("visibilitychange", onVisible);
    };
  }, [web, keys, run, note, startPeer, stopPeer]);

  const start = (e: FormEvent) => {
    e.preventDefault();
    run("start_peer", async () => {
      const room =
        entry === "saved" && savedKey
          ? { room_key: savedKey }
          : entry === "new"
            ? { create_room_key: true }
            : entry === "code"
              ? { pairing_code: code }
              : {};
      const params: StartPeerParams = {
        ...(peerType === "display" ? { name, peer_type: peerType, display_class: displayClass } : { name, peer_type: peerType }),
        room: ROOM,
        ...room,
      };
      const me = await webrtc.startPeer(params).catch((err: unknown) => {
        const why = web ? refusal(err, deviceOf(web.signal)) : null;
        if (why === null) throw err;
        setEntry("code");
        throw new Error(why, { cause: err });
      });
      lastStart.current = params;
      if (web) rememberSignal(web.signal); // it worked: the next start goes there too
      // The key it was given (created or paired) is kept (by the plugin, or in web mode
      // by onRoomKey): later starts use it.
      const kept = await keys.saved(ROOM).catch(() => null);
      setSavedKey(kept);
      if (kept) setEntry("saved");
      return `started as ${me.name} (${me.peer_id})`;
    });
  };

  const pairDevice = () => {
    run("open_pairing", async () => {
      const window = await webrtc.openPairing({ ttl_s: 300 });
      return `pairing open: code ${window.code}`;
    });
  };

  const forget = () => {
    run("forget", async () => {
      await webrtc.stopPeer().catch(() => undefined);
      await keys.forget(ROOM);
      setSavedKey(null);
      setEntry("code");
      return "this device forgot the room";
    });
  };

  const send = (e: FormEvent) => {
    e.preventDefault();
    run("send", async () => {
      const sent = await webrtc.sendMessage(
        parseCue(cue),
        target === "all" ? {} : { displayClass: target },
      );
      if (sent.sent_to.length === 0) {
        throw new Error("reached no peer: nobody is connected (or no display of that class is)");
      }
      return `sent ${sent.message_id} to ${sent.sent_to.length} peer(s)`;
    });
  };

  const setRoomState = (e: FormEvent) => {
    e.preventDefault();
    run("set state", async () => {
      // an empty value clears the key
      await webrtc.setState(stateKey, stateValue.trim() === "" ? null : parseCue(stateValue));
      return `set ${stateKey} for the room`;
    });
  };

  const leave = () => {
    run("change device", async () => {
      await webrtc.stopPeer().catch(() => undefined);
      changeDevice?.();
      return "left the room";
    });
  };

  const others = webrtc.connectedPeers.filter((p) => p.peer_id !== webrtc.self?.peer_id);
  // The display page of the device this page talks to: its sidecar's (plugin), or the one
  // a web peer joins through (every sidecar serves it on its signaling port).
  const displayUrl = webrtc.leader.displayUrl ?? (web ? `http://${deviceOf(web.signal)}/` : null);

  return (
    <>
      <header>
        <h1>Mobile Worship</h1>
        <span className={`badge ${webrtc.subscribed ? "ok" : ""}`}>
          {webrtc.subscribed ? "listening" : "subscribing…"}
        </span>
      </header>

      <section>
        <h2>This device</h2>
        {web ? (
          <p id="web-peer" className="muted">
            No peer layer runs on this device (a phone or tablet app, or a browser): it joins the room through{" "}
            <strong className="device">{deviceOf(web.signal)}</strong>.{" "}
            <button type="button" onClick={leave}>
              Change device
            </button>
          </p>
        ) : null}
        <form id="start" onSubmit={start}>
          <input
            value={name}
            onChange={(e) => setName(e.target.value)}
            maxLength={64}
            required
            aria-label="device name"
          />
          <select value={peerType} onChange={(e) => setPeerType(e.target.value as PeerType)} aria-label="peer type">
            <option value="controller">controller</option>
            <option value="display">display</option>
          </select>
          <select
            value={displayClass}
            onChange={(e) => setDisplayClass(e.target.value as DisplayClass)}
            disabled={peerType !== "display"}
            aria-label="display class"
          >
            {DISPLAY_CLASSES.map((c) => (
              <option key={c} value={c}>
                {c}
              </option>
            ))}
          </select>
          <select value={entry} onChange={(e) => setEntry(e.target.value as Entry)} aria-label="room">
            {savedKey ? <option value="saved">the room this device is in</option> : null}
            {web ? null : <option value="new">start a new room (the first device)</option>}
            <option value="code">join with a code</option>
            <option value="open">open room: anyone on this network can join</option>
          </select>
          {entry === "code" ? (
            <input
              value={code}
              onChange={(e) => setCode(e.target.value.replace(/[^0-9]/g, "").slice(0, 6))}
              inputMode="numeric"
              placeholder="six-digit code"
              aria-label="pairing code"
            />
          ) : null}
          <button type="submit" disabled={entry === "code" && code.length !== 6}>
            Start
          </button>
          <button type="button" onClick={() => run("stop_peer", async () => (await webrtc.stopPeer(), "stopped"))}>
            Stop
          </button>
        </form>
      </section>

      <ConnectionStatus {...webrtc} />
      {webrtc.error && (
        <button type="button" onClick={webrtc.clearError}>
          Dismiss error
        </button>
      )}

      <section>
        <h2>Send a cue</h2>
        <form id="cue" onSubmit={send}>
          <input value={cue} onChange={(e) => setCue(e.target.value)} aria-label="cue (JSON or text)" />
          <select
            value={target}
            onChange={(e) => setTarget(e.target.value as DisplayClass | "all")}
            aria-label="send to"
          >
            <option value="all">all peers</option>
            {DISPLAY_CLASSES.map((c) => (
              <option key={c} value={c}>
                {c} displays
              </option>
            ))}
          </select>
          <button type="submit">Send</button>
        </form>
        <div className="pings">
          {others.map((p) => (
            <button
              key={p.peer_id}
              type="button"
              onClick={() => run(`ping ${p.name}`, async () => `${p.name}: ${await webrtc.ping(p.peer_id)} ms`)}
            >
              Ping {p.name}
            </button>
          ))}
          {others.length === 0 && <span className="muted">No connected peer to ping.</span>}
        </div>
      </section>

      {entry === "open" && !webrtc.leader.keyed ? (
        <p className="warning" role="note">
          An open room lets any device on this network join it and send cues to your screens. Choose it only on a
          network you trust.
        </p>
      ) : null}

      {webrtc.leader.keyed ? (
        <section id="add-device">
          <h2>Add a device</h2>
          {web ? (
            <p className="muted">
              To add a device, open pairing on a device that runs the peer layer (a desktop app): a device that joins
              through another cannot pair others.
            </p>
          ) : webrtc.leader.pairing ? (
            <>
              <p>
                On the new device, choose “join with a code” and enter{" "}
                <strong className="pairing-code">{webrtc.leader.pairing.code}</strong>, or scan this with a phone or
                tablet (it works once):
              </p>
              {webrtc.leader.pairing.pair_url ? (
                <img className="qr" src={qrDataUrl(webrtc.leader.pairing.pair_url)} alt="QR code of a one-time pairing link" />
              ) : null}
              {webrtc.leader.displayUrl ? (
                <p className="muted">
                  In the app on a phone or tablet, connect to {new URL(webrtc.leader.displayUrl).host} first.
                </p>
              ) : null}
            </>
          ) : (
            <button type="button" onClick={pairDevice}>
              Pair a device
            </button>
          )}
          {webrtc.leader.displayUrl ? (
            <p className="muted">
              A screen that paired before opens <a href={webrtc.leader.displayUrl}>{webrtc.leader.displayUrl}</a>.
            </p>
          ) : null}
          <button type="button" onClick={forget}>
            Forget this room on this device
          </button>
        </section>
      ) : displayUrl ? (
        <section>
          <h2>Add a screen</h2>
          <p>
            Open <a href={displayUrl}>{displayUrl}</a> on a phone, tablet or TV on this network:
          </p>
          <img className="qr" src={qrDataUrl(displayUrl)} alt={`QR code of ${displayUrl}`} />
        </section>
      ) : null}

      <section>
        <h2>Room state</h2>
        <form id="room-state" onSubmit={setRoomState}>
          <input value={stateKey} onChange={(e) => setStateKey(e.target.value)} maxLength={128} required aria-label="state key" />
          <input value={stateValue} onChange={(e) => setStateValue(e.target.value)} aria-label="state value (JSON or text; empty clears)" />
          <button type="submit">Set</button>
        </form>
        <table className="state">
          <tbody>
            {Object.values(webrtc.state).map((entry) => (
              <tr key={entry.key}>
                <th>{entry.key}</th>
                <td>{JSON.stringify(entry.value)}</td>
                <td className="muted">
                  {entry.origin.slice(0, 8)} at {new Date(entry.version.time).toLocaleTimeString()}
                </td>
              </tr>
            ))}
          </tbody>
        </table>
        {Object.keys(webrtc.state).length === 0 && <span className="muted">No value set in this room.</span>}
      </section>

      <section>
        <h2>Last messages</h2>
        <ol className="messages">
          {webrtc.messages
            .slice(-10)
            .reverse()
            .map((m) => (
              <li key={m.message_id}>
                {new Date(m.sent_at).toLocaleTimeString()} {m.from.slice(0, 8)}: {JSON.stringify(m.payload)}
              </li>
            ))}
          {webrtc.messages.length === 0 && <li className="muted">none yet</li>}
        </ol>
      </section>

      <section>
        <h2>Log</h2>
        <ol className="log">
          {log.map((line) => (
            <li key={line.id} className={line.error ? "error" : undefined}>
              {line.text}
            </li>
          ))}
        </ol>
      </section>
    </>
  );
}

/** Web mode without a device to join through yet: ask for one's address. */
function DeviceForm({ connect }: { connect: (signal: string) => void }) {
  const [address, setAddress] = useState("");
  const signal = signalingUrl(address);
  const submit = (e: FormEvent) => {
    e.preventDefault();
    if (signal) connect(signal);
  };
  return (
    <>
      <header>
        <h1>Mobile Worship</h1>
      </header>
      <section id="device">
        <h2>Connect to the room</h2>
        <p>
          No peer layer runs on this device (a phone or tablet app, or a browser): it joins the room through a device
          that runs one, such as the booth&apos;s computer. Enter that device&apos;s address, as its app shows it (for
          example 10.0.0.5, or http://10.0.0.5:3010/).
        </p>
        <form id="device-address" onSubmit={submit}>
          <input
            value={address}
            onChange={(e) => setAddress(e.target.value)}
            placeholder="10.0.0.5:3010"
            inputMode="url"
            autoCapitalize="off"
            autoCorrect="off"
            aria-label="device address"
          />
          <button type="submit" disabled={signal === null}>
            Connect
          </button>
        </form>
      </section>
    </>
  );
}

/** Web mode: a web peer per device address; the page asks for one when it has none. */
function WebRoot() {
  const [signal, setSignal] = useState<string | null>(() => initialSignal());
  const backend = useMemo<Backend | null>(
    () => (signal === null ? null : { keys: roomKeys("web", deviceOf(signal)), web: { ...webBackend(signal), signal } }),
    [signal],
  );
  useEffect(
    () => () => {
      backend?.web?.peer.stop(); // another device, or the page is going
    },
    [backend],
  );
  if (backend === null) return <DeviceForm connect={setSignal} />;
  const changeDevice = () => {
    rememberSignal(null);
    setSignal(null);
  };
  return <App key={signal} backend={backend} changeDevice={changeDevice} />;
}

const PLUGIN: Backend = { keys: roomKeys("plugin"), web: null };

const root = document.getElementById("root");
if (!root) throw new Error("#root is missing");
createRoot(root).render(<StrictMode>{MODE === "plugin" ? <App backend={PLUGIN} /> : <WebRoot />}</StrictMode>);
