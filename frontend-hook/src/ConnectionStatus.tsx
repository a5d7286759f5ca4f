/**
 * ConnectionStatus: this device's role, the leader, and every peer of the
 * room, for a booth operator to read at a glance. States carry a class name
 * for colour (`mw-state--connected`, `mw-role--leader`, …) and always a word,
 * so nothing is told by colour alone. Optional styles: ConnectionStatus.css.
 */
import type { ConnectionState, DisplayClass, PeerInfo, PeerType } from "./generated/sidecar-types";
import type { FoundBy, LeaderView, PeerConnectionState } from "./state";
import type { UseWebRTCResult } from "./useWebRTC";

export type ConnectionStatusProps = Pick<UseWebRTCResult, "connectionState" | "leader" | "peers"> &
  Partial<Pick<UseWebRTCResult, "self" | "error" | "restart">> & {
    /** Heading and accessible name of the panel. Default "Connection status". */
    title?: string;
    className?: string;
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
}: ConnectionStatusProps) {
  // the room's own entry first: after a restart it carries the new process's id
  const selfId = peers.find((p) => p.connection_state === "self")?.peer_id ?? self?.peer_id ?? null;
  const rows = [...peers].sort(byRank(leader.leaderId));
  const connected = peers.filter((p) => p.connection_state === "connected").length;
  const others = peers.filter((p) => p.peer_id !== selfId).length;
  const leaderPeer =
    leader.leader ?? (leader.leaderId === null ? undefined : peers.find((p) => p.peer_id === leader.leaderId));

  return (
    <section className={cx("mw-status", `mw-status--${connectionState}`, className)} aria-label={title}>
      <h2 className="mw-status__title">{title}</h2>
      <dl className="mw-status__summary">
        <dt>This device</dt>
        <dd>
          <span
            role="status"
            aria-label="This device's role"
            className={cx("mw-role", `mw-role--${connectionState}`)}
          >
            {ROLE_LABELS[connectionState]}
          </span>
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
      {rows.length === 0 ? (
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
              return (
                <tr
                  key={peer.peer_id}
                  data-peer-id={peer.peer_id}
                  className={cx(
                    "mw-peer",
                    `mw-peer--${peer.peer_type}`,
                    `mw-state--${state}`,
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
                    <span className={cx("mw-state", `mw-state--${state}`)}>{PEER_STATE_LABELS[state]}</span>
                    {state === "connected" && peer.relayed ? (
                      <span className="mw-badge mw-badge--relayed"> (through a relay)</span>
                    ) : null}
                  </td>
                </tr>
              );
            })}
          </tbody>
        </table>
      )}
    </section>
  );
}
