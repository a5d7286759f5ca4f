// The example's page: plain ES module, no bundler.  The Tauri API comes from
// window.__TAURI__ (tauri.conf.json: app.withGlobalTauri).
//
// A bundled frontend uses the useWebRTC hook of frontend-hook/ instead of the calls
// below; from this folder its entry point is:
export const HOOK_MODULE = "../../../frontend-hook/src/index.ts";

const { invoke } = window.__TAURI__.core;
const { listen } = window.__TAURI__.event;

/** Calls a command of the plugin; errors are {kind, code, message, data}. */
const call = (command, args) => invoke(`plugin:mobile-worship|${command}`, args);

const $ = (id) => document.getElementById(id);

function log(text, isError = false) {
  const li = document.createElement("li");
  li.textContent = `${new Date().toLocaleTimeString()}  ${text}`;
  if (isError) li.className = "error";
  $("log").prepend(li);
  while ($("log").children.length > 50) $("log").lastChild.remove();
}

function describe(err) {
  return err && typeof err === "object" && "message" in err ? err.message : String(err);
}

function setSidecar(text, ok) {
  $("sidecar").textContent = `sidecar: ${text}`;
  $("sidecar").className = `badge ${ok ? "ok" : "bad"}`;
}

async function refresh() {
  try {
    const status = await call("get_leader_status");
    $("state").textContent = status.state;
    $("term").textContent = String(status.term);
    $("leader").textContent = status.leader
      ? `${status.leader.name}${status.is_leader ? " (this device)" : ""}`
      : "none";
    const peers = await call("get_connected_peers");
    $("peers").replaceChildren(
      ...(peers.length
        ? peers.map((p) => {
            const li = document.createElement("li");
            li.textContent = `${p.name} (${p.display_class ?? p.peer_type})`;
            return li;
          })
        : [Object.assign(document.createElement("li"), { className: "muted", textContent: "none" })]),
    );
    setSidecar("running", true);
  } catch (err) {
    setSidecar(describe(err), false);
  }
}

$("peer-type").addEventListener("change", () => {
  $("display-class").disabled = $("peer-type").value !== "display";
});

$("join").addEventListener("submit", async (e) => {
  e.preventDefault();
  const params = { name: $("name").value, peer_type: $("peer-type").value };
  if (params.peer_type === "display") params.display_class = $("display-class").value;
  try {
    const me = await call("start_peer", { params });
    log(`started as ${me.name} (${me.peer_id})`);
  } catch (err) {
    log(`start_peer: ${describe(err)}`, true);
  }
  refresh();
});

$("stop").addEventListener("click", async () => {
  try {
    await call("stop_peer");
    log("stopped");
  } catch (err) {
    log(`stop_peer: ${describe(err)}`, true);
  }
  refresh();
});

$("send").addEventListener("submit", async (e) => {
  e.preventDefault();
  try {
    const payload = JSON.parse($("payload").value);
    const sent = await call("send_control_message", { params: { payload } });
    log(`sent ${sent.message_id} to ${sent.sent_to.length} peer(s)`);
  } catch (err) {
    log(`send: ${describe(err)}`, true);
  }
});

const events = {
  "webrtc:connected": (p) => `connected to ${p.peer.name}`,
  "webrtc:disconnected": (p) => `disconnected from ${p.peer_id} (${p.reason})`,
  "webrtc:message": (p) => `message from ${p.from}: ${JSON.stringify(p.payload)}`,
  "webrtc:leader_changed": (p) => `leader is now ${p.leader_id ?? "none"} (term ${p.term})`,
  "webrtc:peer_list_changed": (p) => `${p.peers.length} peer(s) in the room`,
  "mobile-worship:sidecar": (p) => `sidecar ${p.event}`,
};
for (const [name, text] of Object.entries(events)) {
  listen(name, (event) => {
    log(text(event.payload));
    refresh();
  });
}

refresh();
