import { act, cleanup, render, screen, waitFor, within } from "@testing-library/react";
import { clearMocks } from "@tauri-apps/api/mocks";
import { afterEach, describe, expect, it } from "vitest";

import { ConnectionStatus, DISPLAY_SUMMARY_LABELS, displaySummary } from "../src/ConnectionStatus";
import { WebRTCCommandError } from "../src/errors";
import type { PeerInfo } from "../src/generated/sidecar-types";
import type { LeaderView } from "../src/state";
import { useWebRTC } from "../src/useWebRTC";
import { BOOTH, LOBBY, PREFIX, STAGE, fire, flush, installTauri, peer } from "./helpers";

afterEach(() => {
  cleanup();
  clearMocks();
});

const booth = peer(BOOTH, { connection_state: "self", is_leader: true });
const stage = peer(STAGE, { connection_state: "connected" });
const lobby = peer(LOBBY, { connection_state: "disconnected" });

const boothLeads: LeaderView = {
  state: "leader",
  leaderId: BOOTH.peer_id,
  isLeader: true,
  term: 1,
  leader: booth,
  signalingUrl: "ws://10.0.0.5:3010",
  keyed: true,
  foundBy: ["mdns"],
  pairing: null,
  displayUrl: null,
};

/** The cells of the table row whose header (the device column) reads `name`. */
function row(name: RegExp) {
  const table = screen.getByRole("table", { name: "Devices in the room" });
  const header = within(table).getByRole("rowheader", { name });
  const tr = header.closest("tr");
  if (!tr) throw new Error("row header outside a row");
  return { tr, cells: within(tr).getAllByRole("cell").map((c) => c.textContent) };
}

describe("ConnectionStatus", () => {
  it("shows a room of three: the controller leading, two displays with their classes and states", () => {
    render(
      <ConnectionStatus
        connectionState="leader"
        leader={boothLeads}
        self={booth}
        // the sidecar's order; the panel puts the leader first, then controllers, then displays by name
        peers={[stage, lobby, booth]}
      />,
    );

    const panel = screen.getByRole("region", { name: "Connection status" });
    expect(within(panel).getByRole("heading", { name: "Connection status" })).toBeTruthy();

    const role = screen.getByRole("status", { name: "This device's role" });
    expect(role.textContent).toBe("Leader");
    expect(role.className).toContain("mw-role--leader");

    // definition list: "This device" Leader, "Leader" This device (Booth), "Connected" 1 of 2
    const terms = within(panel)
      .getAllByRole("term")
      .map((t) => t.textContent);
    const values = within(panel)
      .getAllByRole("definition")
      .map((d) => d.textContent);
    expect(Object.fromEntries(terms.map((t, i) => [t, values[i]]))).toEqual({
      "This device": "Leader",
      Leader: "This device (Booth)",
      Room: "Keyed: members only",
      "Found by": "Local network discovery (mDNS)",
      Connected: "1 of 2 other devices",
    });

    const table = screen.getByRole("table", { name: "Devices in the room" });
    const headers = within(table)
      .getAllByRole("columnheader")
      .map((h) => h.textContent);
    expect(headers).toEqual(["Device", "Type", "Display class", "Connection"]);
    const names = within(table)
      .getAllByRole("rowheader")
      .map((h) => h.textContent);
    expect(names).toEqual(["Booth (Leader)", "Lobby TV", "Stage left"]);

    const boothRow = row(/Booth/);
    expect(boothRow.cells).toEqual(["Controller", "—none", "This device"]);
    expect(boothRow.tr.className).toContain("mw-peer--leader");
    expect(boothRow.tr.className).toContain("mw-state--self");

    const stageRow = row(/Stage left/);
    expect(stageRow.cells).toEqual(["Display", "Stage", "Connected"]);
    expect(stageRow.tr.className).toContain("mw-state--connected");
    expect(within(stageRow.tr).getByText("Connected").className).toBe("mw-state mw-state--connected");

    const lobbyRow = row(/Lobby TV/);
    expect(lobbyRow.cells).toEqual(["Display", "Lobby", "Disconnected"]);
    expect(within(lobbyRow.tr).getByText("Disconnected").className).toBe("mw-state mw-state--disconnected");

    // the dash of a controller's class is hidden from screen readers, which read "none"
    const dash = within(boothRow.tr).getByText("—");
    expect(dash.getAttribute("aria-hidden")).toBe("true");
  });

  it("on a display following the booth: Follower, led by Booth", () => {
    const me = peer(STAGE, { connection_state: "self" });
    render(
      <ConnectionStatus
        connectionState="follower"
        leader={{ ...boothLeads, isLeader: false, state: "follower", leader: null }}
        self={me}
        peers={[peer(BOOTH, { connection_state: "connected" }), me, peer(LOBBY, { connection_state: "new" })]}
      />,
    );
    expect(screen.getByRole("status", { name: "This device's role" }).textContent).toBe("Follower");
    const leaderValue = screen.getByText("Leader", { selector: "dt" }).nextElementSibling;
    expect(leaderValue?.textContent).toBe("Booth");
    expect(row(/Booth/).cells).toEqual(["Controller", "—none", "Connected"]);
    expect(row(/Stage left/).cells).toEqual(["Display", "Stage", "This device"]);
    expect(row(/Lobby TV/).cells).toEqual(["Display", "Lobby", "Not connected yet"]);
  });

  it("after a restart: counts only the others, this device once (its new id), and says when", () => {
    // the hook's self may still be the old process's entry while the room lists the new one
    const fresh = peer(BOOTH, { peer_id: "11111111-aaaa-4000-8000-00000000000f", connection_state: "self" });
    const at = new Date(2026, 11, 1, 10, 42, 7).getTime();
    render(
      <ConnectionStatus
        connectionState="leader"
        leader={{ ...boothLeads, leaderId: fresh.peer_id, leader: fresh }}
        self={booth}
        peers={[fresh, stage]}
        restart={{ count: 1, at }}
      />,
    );
    const connected = screen.getByText("Connected", { selector: "dt" }).nextElementSibling;
    expect(connected?.textContent).toBe("1 of 1 other device");
    expect(row(/Booth/).cells).toEqual(["Controller", "—none", "This device"]);
    expect(screen.getByText(/The peer layer restarted at/).textContent).toBe(
      `The peer layer restarted at ${new Date(at).toLocaleTimeString()}.`,
    );
  });

  it("before start: Not started, no leader, an empty room, and the last error as an alert", () => {
    render(
      <ConnectionStatus
        connectionState="idle"
        leader={{ state: "idle", leaderId: null, isLeader: false, term: 0, leader: null, signalingUrl: null, keyed: null, foundBy: [], pairing: null, displayUrl: null }}
        peers={[]}
        error={new WebRTCCommandError("start_peer", { code: -32602, message: "Invalid params" })}
        title="Network"
      />,
    );
    expect(screen.getByRole("region", { name: "Network" })).toBeTruthy();
    expect(screen.getByRole("status", { name: "This device's role" }).textContent).toBe("Not started");
    expect(screen.getByText("No leader yet")).toBeTruthy();
    expect(screen.getByText("No devices in the room yet.")).toBeTruthy();
    expect(screen.queryByRole("table")).toBeNull();
    expect(screen.getByRole("alert").textContent).toBe("Error: Invalid params");
  });

  it("says plainly whether the room is keyed or open to any device", () => {
    const { rerender } = render(
      <ConnectionStatus connectionState="leader" leader={boothLeads} self={booth} peers={[booth]} />,
    );
    expect(screen.getByText("Keyed: members only")).toBeTruthy();
    rerender(
      <ConnectionStatus
        connectionState="leader"
        leader={{ ...boothLeads, keyed: false }}
        self={booth}
        peers={[booth]}
      />,
    );
    expect(screen.getByText("Open: any device on this network can join")).toBeTruthy();
  });

  it("says it is waiting for the network while offline", () => {
    render(
      <ConnectionStatus
        connectionState="offline"
        leader={{ state: "offline", leaderId: null, isLeader: false, term: 3, leader: null, signalingUrl: null, keyed: null, foundBy: [], pairing: null, displayUrl: null }}
        peers={[booth]}
      />,
    );
    expect(screen.getByRole("status", { name: "This device's role" }).textContent).toBe("Waiting for network…");
  });

  it("follows the hook's state as events arrive", async () => {
    installTauri({ [`${PREFIX}start_peer`]: () => BOOTH });
    function Panel() {
      const webrtc = useWebRTC();
      return <ConnectionStatus {...webrtc} />;
    }
    render(<Panel />);
    await flush();
    expect(screen.getByRole("status", { name: "This device's role" }).textContent).toBe("Not started");

    await fire("webrtc:peer_list_changed", { peers: [booth, peer(STAGE, { connection_state: "connecting" })] });
    await fire("webrtc:leader_changed", { leader_id: BOOTH.peer_id, is_leader: true, term: 1 });
    expect(screen.getByRole("status", { name: "This device's role" }).textContent).toBe("Leader");
    expect(row(/Stage left/).cells).toEqual(["Display", "Stage", "Connecting…"]);

    await fire("webrtc:connected", { peer: stage });
    expect(row(/Stage left/).cells).toEqual(["Display", "Stage", "Connected"]);

    await fire("webrtc:disconnected", { peer_id: STAGE.peer_id, reason: "left" });
    await waitFor(() => {
      expect(row(/Stage left/).cells).toEqual(["Display", "Stage", "Disconnected"]);
    });
    await act(async () => {
      await Promise.resolve();
    });
  });

  it("says how the room was found and which channels go through a relay", () => {
    render(
      <ConnectionStatus
        connectionState="follower"
        leader={{ ...boothLeads, isLeader: false, state: "follower", foundBy: ["mdns", "rendezvous"] }}
        self={peer(STAGE, { connection_state: "self" })}
        peers={[peer(BOOTH, { connection_state: "connected", relayed: true }), peer(STAGE, { connection_state: "self" })]}
      />,
    );
    const panel = screen.getByRole("region", { name: "Connection status" });
    const found = within(panel)
      .getAllByRole("term")
      .findIndex((t) => t.textContent === "Found by");
    expect(within(panel).getAllByRole("definition")[found]?.textContent).toBe(
      "Local network discovery (mDNS) and A known address (rendezvous)",
    );
    expect(row(/Booth/).cells.at(-1)).toBe("Connected (through a relay)");
  });

  it("shows the pairing code while a window is open", () => {
    render(
      <ConnectionStatus
        connectionState="leader"
        leader={{ ...boothLeads, pairing: { code: "042193", expires_at: 1796112000000, tries_left: 2, uses_left: 1 } }}
        self={booth}
        peers={[booth]}
      />,
    );
    expect(screen.getByLabelText("Pairing code").textContent).toBe("042193");
    expect(screen.getByText(/2 tries left/)).toBeTruthy();
  });

  it("says when a channel goes through the leader rather than a direct path", () => {
    render(
      <ConnectionStatus
        connectionState="follower"
        leader={{ ...boothLeads, isLeader: false, state: "follower" }}
        self={peer(STAGE, { connection_state: "self" })}
        peers={[peer(BOOTH, { connection_state: "connected", via: "relay" }), peer(STAGE, { connection_state: "self" })]}
      />,
    );
    expect(row(/Booth/).cells.at(-1)).toBe("Connected (relayed by the leader)");
  });

  it("under mesh controllers, two displays need no link: not 'Not connected yet'", () => {
    const me = peer(STAGE, { connection_state: "self" });
    render(
      <ConnectionStatus
        connectionState="follower"
        leader={{ ...boothLeads, isLeader: false, state: "follower", leader: null }}
        self={me}
        peers={[peer(BOOTH, { connection_state: "new" }), me, peer(LOBBY, { connection_state: "new" })]}
        mesh="controllers"
      />,
    );
    const lobby = row(/Lobby TV/);
    expect(lobby.cells).toEqual(["Display", "Lobby", "No link needed"]);
    expect(lobby.tr.className).toContain("mw-state--unneeded");
    expect(row(/Booth/).cells).toEqual(["Controller", "—none", "Not connected yet"]); // that one is wanted
  });
});

describe("ConnectionStatus variant display", () => {
  const me = peer(STAGE, { connection_state: "self" });
  const following = { ...boothLeads, isLeader: false, state: "follower" as const, leader: null };

  it("is one line for a volunteer, the details folded away", () => {
    render(
      <ConnectionStatus
        connectionState="follower"
        leader={following}
        self={me}
        peers={[peer(BOOTH, { connection_state: "connected" }), me, peer(LOBBY, { connection_state: "new" })]}
        variant="display"
        mesh="controllers"
        title="This display"
      />,
    );
    const panel = screen.getByRole("region", { name: "This display" });
    const line = within(panel).getByRole("status", { name: "This display's connection" });
    expect(line.textContent).toBe("Connected to the booth");
    expect(line.className).toContain("mw-summary--ok");
    const details = panel.querySelector("details");
    expect(details?.open).toBe(false);
    expect(details?.querySelector("summary")?.textContent).toBe("Details");
    expect(within(panel).getByRole("table", { hidden: true })).toBeTruthy(); // inside the fold
    expect(row(/Lobby TV/).cells.at(-1)).toBe("No link needed");
  });

  it("with only displays in the room, waits for the booth: nothing is wrong", () => {
    render(
      <ConnectionStatus
        connectionState="follower"
        leader={{ ...following, leaderId: LOBBY.peer_id }}
        self={me}
        peers={[me, peer(LOBBY, { connection_state: "new", is_leader: true })]}
        variant="display"
        mesh="controllers"
      />,
    );
    const line = screen.getByRole("status", { name: "This display's connection" });
    expect(line.textContent).toBe("Waiting for the booth");
    expect(line.className).toContain("mw-summary--waiting");
    expect(screen.queryByRole("alert")).toBeNull();
    expect(screen.getByRole("region").className).not.toContain("mw-tone--attention");
  });

  it("words every state for a volunteer", () => {
    const L = DISPLAY_SUMMARY_LABELS;
    const booth = (connection_state: PeerInfo["connection_state"]) => [peer(BOOTH, { connection_state }), me];
    expect(displaySummary("idle", [], null)).toEqual({ tone: "waiting", text: L.idle });
    expect(displaySummary("starting", [], null)).toEqual({ tone: "waiting", text: "Looking for the room…" });
    expect(displaySummary("discovering", [], null).text).toBe(L.looking);
    expect(displaySummary("electing", [], null).text).toBe(L.looking);
    expect(displaySummary("offline", [], null).tone).toBe("attention");
    expect(displaySummary("error", [], null)).toEqual({ tone: "attention", text: "Could not join the room" });
    expect(displaySummary("follower", booth("connected"), me.peer_id)).toEqual({ tone: "ok", text: "Connected to the booth" });
    expect(displaySummary("follower", booth("connecting"), me.peer_id)).toEqual({ tone: "waiting", text: L.connecting });
    expect(displaySummary("follower", booth("new"), me.peer_id).text).toBe(L.connecting);
    expect(displaySummary("follower", booth("disconnected"), me.peer_id)).toEqual({ tone: "attention", text: L.lost });
    expect(displaySummary("leader", [me], me.peer_id)).toEqual({ tone: "waiting", text: "Waiting for the booth" });
    // a second booth connected is enough
    const two = [peer(BOOTH, { connection_state: "disconnected" }), peer(BOOTH, { peer_id: "b2", connection_state: "connected" }), me];
    expect(displaySummary("follower", two, me.peer_id).tone).toBe("ok");
  });
});
