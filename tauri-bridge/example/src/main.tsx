// The example's page: the useWebRTC hook and the ConnectionStatus panel of frontend-hook/,
// over the plugin's commands (`plugin:mobile-worship|<method>`) and `webrtc:*` events.
import { invoke } from "@tauri-apps/api/core";
import { StrictMode, useEffect, useState, type FormEvent } from "react";
import { createRoot } from "react-dom/client";

import {
  ConnectionStatus,
  DISPLAY_CLASS_LABELS,
  useWebRTC,
  type DisplayClass,
  type PeerType,
} from "../../../frontend-hook/src";
import "../../../frontend-hook/src/ConnectionStatus.css";
import qrcode from "qrcode-generator";
import "./style.css";

const DISPLAY_CLASSES = Object.keys(DISPLAY_CLASS_LABELS) as DisplayClass[];
const ROOM = "default";

/** How this device enters the room: the key it kept, a new room, a member's code, or
 * (deliberately) an open room that any device on the network may join. */
type Entry = "saved" | "new" | "code" | "open";

/** The key the plugin kept for the room from an earlier run (docs/api.md, "Keyed rooms"). */
const savedRoomKey = (): Promise<string | null> =>
  invoke<string | null>("plugin:mobile-worship|saved_room_key", { room: ROOM });
const forgetRoomKey = (): Promise<null> => invoke<null>("plugin:mobile-worship|forget_room_key", { room: ROOM });

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

/** Parses the cue as JSON if it is JSON, else sends it as a string. */
function parseCue(text: string): unknown {
  try {
    return JSON.parse(text) as unknown;
  } catch {
    return text;
  }
}

function App() {
  const webrtc = useWebRTC();
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

  // A key kept by an earlier run: this device rejoins its room without pairing.
  useEffect(() => {
    savedRoomKey().then(
      (key) => {
        setSavedKey(key);
        if (key) setEntry("saved");
      },
      () => undefined,
    );
  }, []);

  const note = (text: string, error = false) => {
    const line = { id: Date.now() + Math.random(), text: `${new Date().toLocaleTimeString()}  ${text}`, error };
    setLog((old) => [line, ...old].slice(0, 20));
  };
  /** Runs a command and logs its outcome (the hook also keeps the last error in `error`). */
  const run = (what: string, action: () => Promise<string>) => {
    action().then(
      (text) => note(text),
      (err: unknown) => note(`${what}: ${describe(err)}`, true),
    );
  };

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
      const me = await webrtc.startPeer({
        ...(peerType === "display" ? { name, peer_type: peerType, display_class: displayClass } : { name, peer_type: peerType }),
        room: ROOM,
        ...room,
      });
      // The plugin kept the key it was given (created or paired): later starts use it.
      const kept = await savedRoomKey().catch(() => null);
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
      await forgetRoomKey();
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

  const others = webrtc.connectedPeers.filter((p) => p.peer_id !== webrtc.self?.peer_id);

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
            <option value="new">start a new room (the first device)</option>
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
          {webrtc.leader.pairing ? (
            <>
              <p>
                On the new device, choose “join with a code” and enter{" "}
                <strong className="pairing-code">{webrtc.leader.pairing.code}</strong>, or scan this with a phone or
                tablet (it works once):
              </p>
              {webrtc.leader.pairing.pair_url ? (
                <img className="qr" src={qrDataUrl(webrtc.leader.pairing.pair_url)} alt="QR code of a one-time pairing link" />
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
      ) : webrtc.leader.displayUrl ? (
        <section>
          <h2>Add a screen</h2>
          <p>
            Open <a href={webrtc.leader.displayUrl}>{webrtc.leader.displayUrl}</a> on a phone, tablet or TV on this
            network:
          </p>
          <img className="qr" src={qrDataUrl(webrtc.leader.displayUrl)} alt={`QR code of ${webrtc.leader.displayUrl}`} />
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

const root = document.getElementById("root");
if (!root) throw new Error("#root is missing");
createRoot(root).render(
  <StrictMode>
    <App />
  </StrictMode>,
);
