/**
 * ConnectionStatus: this device's role, the leader, and every peer of the
 * room, for a booth operator to read at a glance. States carry a class name
 * for colour (`mw-state--connected`, `mw-role--leader`, …) and always a word,
 * so nothing is told by colour alone. Optional styles: ConnectionStatus.css.
 *
 * `variant="display"` is the same panel for a screen the congregation reads: one
 * line a volunteer understands ("Connected to the booth", "Waiting for the
 * booth"), with the details folded away (`displaySummary` gives that line).
 */
import type { ConnectionState, DisplayClass, MeshPolicy, PeerInfo, PeerType } from "./generated/sidecar-types";
import type { FoundBy, LeaderView, PeerConnectionState } from "./state";
import type { UseWebRTCResult } from "./useWebRTC";

export type ConnectionStatusProps = Pick<UseWebRTCResult, "connectionState" | "leader" | "peers"> &
  Partial<Pick<UseWebRTCResult, "self" | "error" | "restart">> & {
    /** Heading and accessible name of the panel. Default "Connection status". */
    title?: string;
    className?: string;
    /**
     * "panel" (default): everything, for the booth. "display": one line for a
     * volunteer (`displaySummary`), the rest folded under "Details".
     */
    variant?: "panel" | "display";
    /**
     * The mesh this device started with, when known. With "controllers" (the
     * default of `start_peer`) two displays never open a channel, and the panel
     * says "No link needed" rather than "Not connected yet" for such a pair.
     */
    mesh?: MeshPolicy;
  };

export const ROLE_LABELS: Readonly<Record<PeerConnectionState, string>> = {
  idle: "Not started",
  starting: "Starting…",
  offline: "Waiting for network…",
  discovering: "Looking for other devices…",
  electing: "Choosing a leader…",
  leader: "Leader",
  follower: "Follower",
  error: "Error",
};

export const PEER_STATE_LABELS: Readonly<Record<ConnectionState, string>> = {
  new: "Not connected yet",
  connecting: "Connecting…",
  connected: "Connected",
  disconnected: "Disconnected",
  self: "This device",
};

/** A pair the mesh never links (two displays under mesh "controllers"). */
export const NOT_NEEDED_LABEL = "No link needed";

/** How a display's one-line summary should catch the eye: not at all, a little, or ask for a person. */
export type SummaryTone = "ok" | "waiting" | "attention";

export interface DisplaySummary {
  tone: SummaryTone;
  text: string;
}

/** The one line a display shows (`variant="display"`), worded for a volunteer. */
export const DISPLAY_SUMMARY_LABELS = {
  idle: "Not started",
  looking: "Looking for the room…",
  offline: "No network: check this screen's Wi-Fi or cable",
  error: "Could not join the room",
  connected: "Connected to the booth",
  connecting: "Connecting to the booth…",
  lost: "Lost the booth: reconnecting…",
  waiting: "Waiting for the booth",
} as const;

/**
 * What a display tells a volunteer about its connection: whether it hears the
 * booth (a controller of the room). Other displays do not count: a display
 * needs no channel to them, so none missing is a problem.
 */
export function displaySummary(
  connectionState: PeerConnectionState,
  peers: readonly PeerInfo[],
  selfId: string | null,
): DisplaySummary {
  const L = DISPLAY_SUMMARY_LABELS;
  switch (connectionState) {
    case "idle":
      return { tone: "waiting", text: L.idle };
    case "starting":
    case "discovering":
    case "electing":
      return { tone: "waiting", text: L.looking };
    case "offline":
      return { tone: "attention", text: L.offline };
    case "error":
      return { tone: "attention", text: L.error };
    case "leader":
    case "follower":
      break;
  }
  const booth = peers.filter((p) => p.peer_type === "controller" && p.peer_id !== selfId && p.connection_state !== "self");
  if (booth.some((p) => p.connection_state === "connected")) return { tone: "ok", text: L.connected };
  if (booth.some((p) => p.connection_state === "new" || p.connection_state === "connecting"))
    return { tone: "waiting", text: L.connecting };
  if (booth.length > 0) return { tone: "attention", text: L.lost };
  return { tone: "waiting", text: L.waiting };
}

export const PEER_TYPE_LABELS: Readonly<Record<PeerType, string>> = {
  controller: "Controller",
  display: "Display",
};

export const DISPLAY_CLASS_LABELS: Readonly<Record<DisplayClass, string>> = {
  audience: "Audience",
  stage: "Stage",
  lobby: "Lobby",
};

export const FOUND_BY_LABELS: Readonly<Record<FoundBy, string>> = {
  mdns: "Local network discovery (mDNS)",
  rendezvous: "A known address (rendezvous)",
};

function foundByText(foundBy: readonly FoundBy[]): string {
  return foundBy.length === 0 ? "—" : foundBy.map((f) => FOUND_BY_LABELS[f]).join(" and ");
}

function cx(...names: (string | false | null | undefined)[]): string {
  return names.filter(Boolean).join(" ");
}

function shortId(id: string): string {
  return id.length > 8 ? `${id.slice(0, 8)}…` : id;
}

function leaderText(
  leader: LeaderView,
  leaderPeer: PeerInfo | undefined,
  self: PeerInfo | null | undefined,
): string {
  if (leader.isLeader) {
    const name = self?.name ?? leaderPeer?.name;
    return name ? `This device (${name})` : "This device";
  }
  if (leaderPeer) return leaderPeer.name;
  if (leader.leaderId !== null) return `Unknown device (${shortId(leader.leaderId)})`;
  return "No leader yet";
}

/** Leader first, then controllers, then displays; by name within each. */
function byRank(leaderId: string | null) {
  const rank = (p: PeerInfo) => (p.peer_id === leaderId ? 0 : p.peer_type === "controller" ? 1 : 2);
  return (a: PeerInfo, b: PeerInfo) =>
    rank(a) - rank(b) || a.name.localeCompare(b.name) || a.peer_id.localeCompare(b.peer_id);
}

export function ConnectionStatus({
  connectionState,
  leader,
  peers,
  self,
  error,
  restart,
  title = "Connection status",
  className,
  variant = "panel",
  mesh,
}: ConnectionStatusProps) {
  // the room's own entry first: after a restart it carries the new process's id
  const selfId = peers.find((p) => p.connection_state === "self")?.peer_id ?? self?.peer_id ?? null;
  const selfType = peers.find((p) => p.peer_id === selfId)?.peer_type ?? self?.peer_type ?? null;
  const rows = [...peers].sort(byRank(leader.leaderId));
  const connected = peers.filter((p) => p.connection_state === "connected").length;
  const others = peers.filter((p) => p.peer_id !== selfId).length;
  const leaderPeer =
    leader.leader ?? (leader.leaderId === null ? undefined : peers.find((p) => p.peer_id === leader.leaderId));
  const display = variant === "display";
  const summary = display ? displaySummary(connectionState, peers, selfId) : null;

  const facts = (
    <dl className="mw-status__summary">
      <dt>This device</dt>
      <dd>
        {display ? (
          ROLE_LABELS[connectionState]
        ) : (
          <span role="status" aria-label="This device's role" className={cx("mw-role", `mw-role--${connectionState}`)}>
            {ROLE_LABELS[connectionState]}
          </span>
        )}
      </dd>
      <dt>Leader</dt>
      <dd className={cx("mw-status__leader", leader.leaderId === null && "mw-status__leader--none")}>
        {leaderText(leader, leaderPeer, self)}
      </dd>
      <dt>Room</dt>
      <dd className={cx("mw-status__room", leader.keyed === false && "mw-status__room--open")}>
        {leader.keyed === null
          ? "—"
          : leader.keyed
            ? "Keyed: members only"
            : "Open: any device on this network can join"}
      </dd>
      {leader.pairing ? (
        <>
          <dt>Pairing code</dt>
          <dd className="mw-status__pairing">
            <span className="mw-pairing__code" aria-label="Pairing code">
              {leader.pairing.code}
            </span>{" "}
            (until {new Date(leader.pairing.expires_at).toLocaleTimeString()}, {leader.pairing.tries_left}{" "}
            {leader.pairing.tries_left === 1 ? "try" : "tries"} left)
          </dd>
        </>
      ) : null}
      <dt>Found by</dt>
      <dd className="mw-status__found">{foundByText(leader.foundBy)}</dd>
      <dt>Connected</dt>
      <dd>
        {connected} of {others} other {others === 1 ? "device" : "devices"}
      </dd>
    </dl>
  );

  const notices = (
    <>
      {restart ? (
        <p className="mw-status__restart">
          The peer layer restarted at {new Date(restart.at).toLocaleTimeString()}
          {restart.count > 1 ? ` (${restart.count} restarts since the app started)` : ""}.
        </p>
      ) : null}
      {error ? (
        <p role="alert" className="mw-status__error">
          Error: {error.message}
        </p>
      ) : null}
    </>
  );

  const table =
    rows.length === 0 ? (
      <p className="mw-status__empty">No devices in the room yet.</p>
    ) : (
      <table className="mw-peers" aria-label="Devices in the room">
        <thead>
          <tr>
            <th scope="col">Device</th>
            <th scope="col">Type</th>
            <th scope="col">Display class</th>
            <th scope="col">Connection</th>
          </tr>
        </thead>
        <tbody>
          {rows.map((peer) => {
            const isLeader = leader.leaderId !== null ? peer.peer_id === leader.leaderId : peer.is_leader;
            const isSelf = peer.peer_id === selfId;
            const state: ConnectionState = isSelf ? "self" : peer.connection_state;
            // two displays under mesh "controllers": no channel is ever opened, and none is missing
            const unneeded =
              state === "new" && mesh === "controllers" && selfType === "display" && peer.peer_type === "display";
            const shown = unneeded ? "unneeded" : state;
            return (
              <tr
                key={peer.peer_id}
                data-peer-id={peer.peer_id}
                className={cx(
                  "mw-peer",
                  `mw-peer--${peer.peer_type}`,
                  `mw-state--${shown}`,
                  isLeader && "mw-peer--leader",
                  isSelf && "mw-peer--self",
                )}
              >
                <th scope="row">
                  <span className="mw-peer__name">{peer.name}</span>
                  {isLeader ? <span className="mw-badge mw-badge--leader"> (Leader)</span> : null}
                </th>
                <td>{PEER_TYPE_LABELS[peer.peer_type]}</td>
                <td>
                  {peer.display_class !== null ? (
                    DISPLAY_CLASS_LABELS[peer.display_class]
                  ) : (
                    <span className="mw-none">
                      <span aria-hidden="true">—</span>
                      <span className="mw-visually-hidden">none</span>
                    </span>
                  )}
                </td>
                <td>
                  <span className={cx("mw-state", `mw-state--${shown}`)}>
                    {unneeded ? NOT_NEEDED_LABEL : PEER_STATE_LABELS[state]}
                  </span>
                  {state === "connected" && peer.via === "relay" ? (
                    <span className="mw-badge mw-badge--via-leader"> (relayed by the leader)</span>
                  ) : state === "connected" && peer.relayed ? (
                    <span className="mw-badge mw-badge--relayed"> (through a relay)</span>
                  ) : null}
                </td>
              </tr>
            );
          })}
        </tbody>
      </table>
    );

  if (summary) {
    return (
      <section
        className={cx("mw-status", "mw-status--display", `mw-status--${connectionState}`, `mw-tone--${summary.tone}`, className)}
        aria-label={title}
      >
        <h2 className="mw-status__title mw-visually-hidden">{title}</h2>
        <p role="status" aria-label="This display's connection" className={cx("mw-summary", `mw-summary--${summary.tone}`)}>
          {summary.text}
        </p>
        {notices}
        <details className="mw-status__details">
          <summary>Details</summary>
          {facts}
          {table}
        </details>
      </section>
    );
  }

  return (
    <section className={cx("mw-status", `mw-status--${connectionState}`, className)} aria-label={title}>
      <h2 className="mw-status__title">{title}</h2>
      {facts}
      {notices}
      {table}
    </section>
  );
}
