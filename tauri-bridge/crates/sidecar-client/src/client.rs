//! The JSON-RPC client over one running child.

use std::collections::{HashMap, VecDeque};
use std::fmt;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use tokio::sync::{broadcast, mpsc, oneshot, watch};

use crate::error::{Error, Result, RpcError};
use crate::lines::{Line, LineSplitter, DEFAULT_MAX_LINE};
use crate::transport::{ChildEvent, ExitInfo, ProcessControl, Spawned, StdinWriter};
use crate::types::{
    LeaderStatus, Notification, OpenPairingParams, PairingWindow, PeerInfo, PingPeerParams, PingResult,
    RotateRoomKeyParams, RotationResult, SendControlMessageParams, SendResult, StartPeerParams, StateEntry,
};

const STDERR_TAIL: usize = 20;
/// How much of a malformed line goes into the log.
const LOG_SNIPPET: usize = 200;

/// Knobs of a [`Client`].
#[derive(Debug, Clone)]
pub struct ClientConfig {
    /// Bound of one call (the sidecar bounds each method at 30 s itself).  Default 35 s.
    pub call_timeout: Duration,
    /// How long [`Client::shutdown`] waits after closing stdin before it kills the process
    /// tree.  Default 3 s (the sidecar's own exit bound).
    pub shutdown_grace: Duration,
    /// Capacity of the notification and event channels (a subscriber that falls further
    /// behind gets `RecvError::Lagged`).  Default 1024.
    pub channel_capacity: usize,
    /// Longest line accepted from the child.  Default 16 MiB.
    pub max_line: usize,
}

impl Default for ClientConfig {
    fn default() -> Self {
        Self {
            call_timeout: Duration::from_secs(35),
            shutdown_grace: Duration::from_secs(3),
            channel_capacity: 1024,
            max_line: DEFAULT_MAX_LINE,
        }
    }
}

/// Lifecycle of the sidecar process, for the host to show or log.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum SidecarEvent {
    /// A sidecar process is running (`restart` counts the restarts before it).
    Started { pid: Option<u32>, restart: u32 },
    /// The process ended; pending calls failed with [`Error::SidecarExited`].
    Exited { exit: ExitInfo },
    /// The supervisor will start a new process after `delay_ms`.
    Restarting { attempt: u32, delay_ms: u64 },
    /// Starting a new process failed.
    RestartFailed { attempt: u32, error: String },
    /// The supervisor stopped restarting.
    GaveUp { attempts: u32 },
}

type Reply = oneshot::Sender<Result<Value>>;

struct State {
    pending: HashMap<u64, Reply>,
    exited: Option<ExitInfo>,
    closed: bool,
}

/// What the background tasks share with the handles.
struct Shared {
    description: String,
    state: Mutex<State>,
    shutting_down: AtomicBool,
    malformed: AtomicU64,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn resolve(&self, id: u64, outcome: Result<Value>) -> bool {
        let reply = self.lock().pending.remove(&id);
        match reply {
            Some(tx) => {
                let _ = tx.send(outcome);
                true
            }
            None => false,
        }
    }
}

enum WriterCmd {
    Write { id: Option<u64>, line: Vec<u8> },
    Close,
}

struct Inner {
    shared: Arc<Shared>,
    config: ClientConfig,
    next_id: AtomicU64,
    writer: mpsc::UnboundedSender<WriterCmd>,
    notifications: broadcast::Sender<Notification>,
    events: broadcast::Sender<SidecarEvent>,
    exit: watch::Receiver<Option<ExitInfo>>,
    control: Arc<dyn ProcessControl>,
}

/// A JSON-RPC 2.0 client talking to one child over its stdin/stdout.
///
/// Cheap to clone; every clone is the same connection.  Calls may run concurrently: each
/// gets its own id and waits for its own answer, whatever order answers come in.
/// Notifications go to every [`subscribe`](Client::subscribe)r.  When the child dies, every
/// pending call fails with [`Error::SidecarExited`] and a [`SidecarEvent::Exited`] is sent.
/// When the last clone is dropped, stdin is closed, so the sidecar leaves by itself.
#[derive(Clone)]
pub struct Client {
    inner: Arc<Inner>,
}

impl fmt::Debug for Client {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Client")
            .field("sidecar", &self.inner.shared.description)
            .field("pid", &self.pid())
            .field("alive", &self.is_alive())
            .finish()
    }
}

impl Client {
    /// Drive a spawned child.  Must be called within a tokio runtime.
    pub fn new(spawned: Spawned, config: ClientConfig) -> Self {
        let notifications = broadcast::channel(config.channel_capacity.max(1)).0;
        let events = broadcast::channel(config.channel_capacity.max(1)).0;
        Self::with_channels(spawned, config, notifications, events, 0)
    }

    /// Spawn `command` with tokio and drive it.
    pub fn spawn(command: &crate::SidecarCommand, config: ClientConfig) -> Result<Self> {
        let spawned = command
            .spawn()
            .map_err(|source| Error::Spawn { program: crate::Launcher::describe(command), source })?;
        Ok(Self::new(spawned, config))
    }

    pub(crate) fn with_channels(
        spawned: Spawned,
        config: ClientConfig,
        notifications: broadcast::Sender<Notification>,
        events: broadcast::Sender<SidecarEvent>,
        restart: u32,
    ) -> Self {
        let Spawned { description, stdin, events: child_events, control } = spawned;
        let shared = Arc::new(Shared {
            description,
            state: Mutex::new(State { pending: HashMap::new(), exited: None, closed: false }),
            shutting_down: AtomicBool::new(false),
            malformed: AtomicU64::new(0),
        });
        let (writer_tx, writer_rx) = mpsc::unbounded_channel();
        let (exit_tx, exit_rx) = watch::channel(None);
        tokio::spawn(write_loop(stdin, writer_rx, shared.clone()));
        let reader = Reader {
            shared: shared.clone(),
            stdout: LineSplitter::new(config.max_line),
            stderr: LineSplitter::new(config.max_line),
            stderr_tail: VecDeque::new(),
            notifications: notifications.clone(),
            events: events.clone(),
            exit_tx,
        };
        tokio::spawn(reader.run(child_events));
        let _ = events.send(SidecarEvent::Started { pid: control.pid(), restart });
        tracing::debug!(sidecar = %shared.description, pid = ?control.pid(), "sidecar started");
        Self {
            inner: Arc::new(Inner {
                shared,
                config,
                next_id: AtomicU64::new(1),
                writer: writer_tx,
                notifications,
                events,
                exit: exit_rx,
                control,
            }),
        }
    }

    /// The child's pid, if known.
    pub fn pid(&self) -> Option<u32> {
        self.inner.control.pid()
    }

    /// Whether the child is still running (no exit seen yet).
    pub fn is_alive(&self) -> bool {
        self.inner.exit.borrow().is_none()
    }

    /// How the child ended, once it has.
    pub fn exit_info(&self) -> Option<ExitInfo> {
        self.inner.exit.borrow().clone()
    }

    /// How many lines from the child were not JSON-RPC (logged and skipped).
    pub fn malformed_lines(&self) -> u64 {
        self.inner.shared.malformed.load(Ordering::Relaxed)
    }

    /// A receiver of every notification from now on.
    pub fn subscribe(&self) -> broadcast::Receiver<Notification> {
        self.inner.notifications.subscribe()
    }

    /// A receiver of lifecycle events from now on.
    pub fn events(&self) -> broadcast::Receiver<SidecarEvent> {
        self.inner.events.subscribe()
    }

    /// Wait until the child has exited.
    pub async fn wait_exit(&self) -> ExitInfo {
        let mut rx = self.inner.exit.clone();
        let waited = rx.wait_for(Option::is_some).await.map(|info| info.clone());
        let outcome = match waited {
            Ok(info) => info,
            Err(_) => rx.borrow().clone(),
        };
        outcome.unwrap_or_else(|| ExitInfo { code: None, signal: None, expected: false, stderr_tail: vec![] })
    }

    /// Call `method` with `params` (`Value::Null`: no params) and decode the result.
    pub async fn call<R: DeserializeOwned>(&self, method: &str, params: Value) -> Result<R> {
        self.call_with_timeout(method, params, self.inner.config.call_timeout).await
    }

    /// [`call`](Self::call) with its own timeout.
    pub async fn call_with_timeout<R: DeserializeOwned>(
        &self,
        method: &str,
        params: Value,
        timeout: Duration,
    ) -> Result<R> {
        let value = self.call_raw(method, params, timeout).await?;
        serde_json::from_value(value).map_err(|source| Error::Decode { method: method.to_owned(), source })
    }

    /// The untyped call underneath.
    pub async fn call_raw(&self, method: &str, params: Value, timeout: Duration) -> Result<Value> {
        let shared = &self.inner.shared;
        let id = self.inner.next_id.fetch_add(1, Ordering::Relaxed);
        let (tx, rx) = oneshot::channel();
        {
            let mut state = shared.lock();
            if let Some(exit) = &state.exited {
                return Err(Error::SidecarExited(exit.clone()));
            }
            if state.closed {
                return Err(Error::Closed);
            }
            state.pending.insert(id, tx);
        }
        let guard = PendingGuard { shared, id };
        let line = encode(method, &params, Some(id));
        if self.inner.writer.send(WriterCmd::Write { id: Some(id), line }).is_err() {
            return Err(Error::Closed);
        }
        let outcome = match tokio::time::timeout(timeout, rx).await {
            Ok(Ok(outcome)) => outcome,
            Ok(Err(_)) => Err(Error::Closed),
            Err(_) => Err(Error::Timeout { method: method.to_owned(), timeout }),
        };
        drop(guard);
        outcome
    }

    /// Send a notification (no id, no answer) to the child.
    pub fn notify(&self, method: &str, params: Value) -> Result<()> {
        if self.inner.shared.lock().closed {
            return Err(Error::Closed);
        }
        let line = encode(method, &params, None);
        self.inner.writer.send(WriterCmd::Write { id: None, line }).map_err(|_| Error::Closed)
    }

    // -- the methods of docs/api.md ---------------------------------------------------------

    /// `start_peer`: join the room; returns this peer's [`PeerInfo`].
    pub async fn start_peer(&self, params: &StartPeerParams) -> Result<PeerInfo> {
        self.call("start_peer", to_params("start_peer", params)?).await
    }

    /// `send_control_message`.
    pub async fn send_control_message(&self, params: &SendControlMessageParams) -> Result<SendResult> {
        self.call("send_control_message", to_params("send_control_message", params)?).await
    }

    /// `get_connected_peers`: peers with an open data channel.
    pub async fn get_connected_peers(&self) -> Result<Vec<PeerInfo>> {
        self.call("get_connected_peers", Value::Null).await
    }

    /// `get_leader_status`.
    pub async fn get_leader_status(&self) -> Result<LeaderStatus> {
        self.call("get_leader_status", Value::Null).await
    }

    /// `get_state`: the room's retained state, by key.
    pub async fn get_state(&self) -> Result<Vec<StateEntry>> {
        self.call("get_state", Value::Null).await
    }

    /// `open_pairing`: a pairing window of this keyed room (its code, for a new device).
    pub async fn open_pairing(&self, params: &OpenPairingParams) -> Result<PairingWindow> {
        self.call("open_pairing", to_params("open_pairing", params)?).await
    }

    /// `close_pairing`.
    pub async fn close_pairing(&self) -> Result<()> {
        let _: Value = self.call("close_pairing", Value::Null).await?;
        Ok(())
    }

    /// `rotate_room_key`: every member present but `revoke` gets a new key
    /// (`webrtc:room_key`); the revoked are shut out of the room.
    pub async fn rotate_room_key(&self, revoke: &[String]) -> Result<RotationResult> {
        let params = RotateRoomKeyParams { revoke: revoke.to_vec() };
        self.call("rotate_room_key", to_params("rotate_room_key", &params)?).await
    }

    /// `ping_peer`: round trip over the data channel.
    pub async fn ping_peer(&self, peer_id: &str) -> Result<PingResult> {
        let params = PingPeerParams { peer_id: peer_id.to_owned() };
        self.call("ping_peer", to_params("ping_peer", &params)?).await
    }

    /// `stop_peer`: leave the network, keep the process.
    pub async fn stop_peer(&self) -> Result<()> {
        let _: Value = self.call("stop_peer", Value::Null).await?;
        Ok(())
    }

    // -- shutdown -----------------------------------------------------------------------

    /// Stop the sidecar: refuse new calls, close its stdin (it leaves the network and exits
    /// on EOF), wait up to `shutdown_grace`, then kill its whole process tree.  Calls still
    /// pending when it exits fail with [`Error::SidecarExited`].  Idempotent.
    pub async fn shutdown(&self) -> ExitInfo {
        let grace = self.inner.config.shutdown_grace;
        self.inner.shared.shutting_down.store(true, Ordering::SeqCst);
        self.inner.shared.lock().closed = true;
        let _ = self.inner.writer.send(WriterCmd::Close);
        let info = match tokio::time::timeout(grace, self.wait_exit()).await {
            Ok(info) => info,
            Err(_) => {
                tracing::warn!(sidecar = %self.inner.shared.description, ?grace,
                    "sidecar still running after stdin was closed: killing its process tree");
                self.kill();
                match tokio::time::timeout(Duration::from_secs(2), self.wait_exit()).await {
                    Ok(info) => info,
                    Err(_) => {
                        tracing::error!(sidecar = %self.inner.shared.description, "sidecar did not die after SIGKILL");
                        ExitInfo { code: None, signal: None, expected: true, stderr_tail: vec![] }
                    }
                }
            }
        };
        // Anything the sidecar left behind in its process group goes too.
        if let Err(e) = self.inner.control.kill_tree() {
            tracing::debug!(error = %e, "kill_tree after exit");
        }
        info
    }

    /// Kill the process tree now, without closing stdin first (the exit is reported as
    /// unexpected unless [`shutdown`](Self::shutdown) is under way).
    pub fn kill(&self) {
        if let Err(e) = self.inner.control.kill_tree() {
            tracing::warn!(error = %e, "could not kill the sidecar's process tree");
        }
    }
}

fn to_params<P: Serialize>(method: &str, params: &P) -> Result<Value> {
    serde_json::to_value(params).map_err(|source| Error::Encode { method: method.to_owned(), source })
}

/// One request or notification line (`\n`-terminated).
fn encode(method: &str, params: &Value, id: Option<u64>) -> Vec<u8> {
    let mut msg = json!({"jsonrpc": "2.0", "method": method});
    if !params.is_null() {
        msg["params"] = params.clone();
    }
    if let Some(id) = id {
        msg["id"] = json!(id);
    }
    let mut line = serde_json::to_vec(&msg).expect("a JSON value always serializes");
    line.push(b'\n');
    line
}

/// Removes a call from the pending map however the call ends (answer, timeout, or the
/// caller dropping the future).
struct PendingGuard<'a> {
    shared: &'a Shared,
    id: u64,
}

impl Drop for PendingGuard<'_> {
    fn drop(&mut self) {
        self.shared.lock().pending.remove(&self.id);
    }
}

async fn write_loop(
    mut stdin: Box<dyn StdinWriter>,
    mut rx: mpsc::UnboundedReceiver<WriterCmd>,
    shared: Arc<Shared>,
) {
    while let Some(cmd) = rx.recv().await {
        match cmd {
            WriterCmd::Write { id, line } => {
                if let Err(e) = stdin.write_all(line).await {
                    tracing::debug!(error = %e, "write to the sidecar failed");
                    if let Some(id) = id {
                        shared.resolve(id, Err(Error::Io(e)));
                    }
                }
            }
            WriterCmd::Close => break,
        }
    }
    // Close requested, or every Client handle dropped: EOF tells the sidecar to leave.
    stdin.close();
}

struct Reader {
    shared: Arc<Shared>,
    stdout: LineSplitter,
    stderr: LineSplitter,
    stderr_tail: VecDeque<String>,
    notifications: broadcast::Sender<Notification>,
    events: broadcast::Sender<SidecarEvent>,
    exit_tx: watch::Sender<Option<ExitInfo>>,
}

impl Reader {
    async fn run(mut self, mut events: mpsc::Receiver<ChildEvent>) {
        let (code, signal) = loop {
            match events.recv().await {
                Some(ChildEvent::Stdout(chunk)) => {
                    for line in self.stdout.push(&chunk) {
                        self.on_stdout_line(line);
                    }
                }
                Some(ChildEvent::Stderr(chunk)) => {
                    for line in self.stderr.push(&chunk) {
                        self.on_stderr_line(line);
                    }
                }
                Some(ChildEvent::Error(e)) => {
                    tracing::warn!(sidecar = %self.shared.description, "transport: {e}");
                }
                Some(ChildEvent::Exited { code, signal }) => break (code, signal),
                None => break (None, None),
            }
        };
        if let Some(line) = self.stdout.finish() {
            self.on_stdout_line(line);
        }
        if let Some(line) = self.stderr.finish() {
            self.on_stderr_line(line);
        }
        let info = ExitInfo {
            code,
            signal,
            expected: self.shared.shutting_down.load(Ordering::SeqCst),
            stderr_tail: self.stderr_tail.drain(..).collect(),
        };
        if info.expected {
            tracing::debug!(sidecar = %self.shared.description, "{info}");
        } else {
            tracing::warn!(sidecar = %self.shared.description, "unexpected exit: {info}");
        }
        let pending: Vec<Reply> = {
            let mut state = self.shared.lock();
            state.exited = Some(info.clone());
            state.pending.drain().map(|(_, tx)| tx).collect()
        };
        for tx in pending {
            let _ = tx.send(Err(Error::SidecarExited(info.clone())));
        }
        let _ = self.exit_tx.send(Some(info.clone()));
        let _ = self.events.send(SidecarEvent::Exited { exit: info });
    }

    fn malformed(&self, what: &str, bytes: &[u8]) {
        self.shared.malformed.fetch_add(1, Ordering::Relaxed);
        let text = String::from_utf8_lossy(bytes);
        let snippet: String = text.chars().take(LOG_SNIPPET).collect();
        tracing::warn!(sidecar = %self.shared.description, line = %snippet,
            "skipped a malformed line from the sidecar: {what}");
    }

    fn on_stdout_line(&mut self, line: Line) {
        let bytes = match line {
            Line::Complete(bytes) => bytes,
            Line::TooLong { len } => {
                self.shared.malformed.fetch_add(1, Ordering::Relaxed);
                tracing::warn!(sidecar = %self.shared.description, len, "skipped an over-long line from the sidecar");
                return;
            }
        };
        match serde_json::from_slice::<Value>(&bytes) {
            Ok(Value::Array(items)) if !items.is_empty() => {
                for item in items {
                    self.on_message(item, &bytes);
                }
            }
            Ok(value) => self.on_message(value, &bytes),
            Err(e) => self.malformed(&format!("not JSON ({e})"), &bytes),
        }
    }

    fn on_message(&mut self, value: Value, raw: &[u8]) {
        let Value::Object(mut map) = value else {
            return self.malformed("not a JSON-RPC object", raw);
        };
        if let Some(method) = map.get("method").and_then(Value::as_str).map(str::to_owned) {
            if map.contains_key("id") {
                tracing::warn!(sidecar = %self.shared.description, method, "ignored a request from the sidecar");
                return;
            }
            let params = map.remove("params").unwrap_or(Value::Null);
            let note = match Notification::from_parts(&method, params.clone()) {
                Ok(note) => note,
                Err(e) => {
                    tracing::warn!(sidecar = %self.shared.description, method, error = %e,
                        "notification params do not fit their type; passed on untyped");
                    Notification::Other { method, params }
                }
            };
            // No subscriber yet is fine: nobody listens.
            let _ = self.notifications.send(note);
            return;
        }
        let outcome = if let Some(error) = map.remove("error") {
            match serde_json::from_value::<RpcError>(error.clone()) {
                Ok(e) => Err(Error::from(e)),
                Err(_) => Err(Error::Rpc(RpcError {
                    code: 0,
                    message: "malformed error object".into(),
                    data: Some(error),
                })),
            }
        } else if let Some(result) = map.remove("result") {
            Ok(result)
        } else {
            return self.malformed("neither a notification nor a response", raw);
        };
        match map.get("id").and_then(Value::as_u64) {
            Some(id) => {
                if !self.shared.resolve(id, outcome) {
                    tracing::debug!(sidecar = %self.shared.description, id, "answer to a call no longer waiting (timed out?)");
                }
            }
            None => match outcome {
                Err(e) => {
                    tracing::warn!(sidecar = %self.shared.description, "error from the sidecar without an id: {e}")
                }
                Ok(_) => self.malformed("response without a usable id", raw),
            },
        }
    }

    fn on_stderr_line(&mut self, line: Line) {
        let text = match line {
            Line::Complete(bytes) => String::from_utf8_lossy(&bytes).into_owned(),
            Line::TooLong { len } => format!("<{len} bytes of stderr skipped>"),
        };
        // The sidecar's levels: "... WARNING sidecar.x: ..." or {"level": "WARNING", ...}
        let head: String = text.chars().take(64).collect();
        let sidecar = &self.shared.description;
        if head.contains("ERROR") || head.contains("CRITICAL") {
            tracing::error!(target: "mobile_worship_sidecar", sidecar = %sidecar, "{text}");
        } else if head.contains("WARNING") {
            tracing::warn!(target: "mobile_worship_sidecar", sidecar = %sidecar, "{text}");
        } else if head.contains("DEBUG") {
            tracing::debug!(target: "mobile_worship_sidecar", sidecar = %sidecar, "{text}");
        } else {
            tracing::info!(target: "mobile_worship_sidecar", sidecar = %sidecar, "{text}");
        }
        if self.stderr_tail.len() == STDERR_TAIL {
            self.stderr_tail.pop_front();
        }
        self.stderr_tail.push_back(text);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encode_omits_null_params_and_ends_with_newline() {
        let line = encode("get_leader_status", &Value::Null, Some(7));
        assert_eq!(line.last(), Some(&b'\n'));
        let v: Value = serde_json::from_slice(&line).unwrap();
        assert_eq!(v, json!({"jsonrpc":"2.0","method":"get_leader_status","id":7}));
        let line = encode("x", &json!({"payload": "a\nb"}), None);
        assert_eq!(line.iter().filter(|&&b| b == b'\n').count(), 1, "no newline inside a message");
        let v: Value = serde_json::from_slice(&line).unwrap();
        assert_eq!(v, json!({"jsonrpc":"2.0","method":"x","params":{"payload":"a\nb"}}));
    }

    #[test]
    fn events_serialize_tagged() {
        let e = SidecarEvent::Restarting { attempt: 2, delay_ms: 500 };
        assert_eq!(
            serde_json::to_value(&e).unwrap(),
            json!({"event":"restarting","attempt":2,"delay_ms":500})
        );
    }
}
