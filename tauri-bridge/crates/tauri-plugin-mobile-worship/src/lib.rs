//! Tauri v2 plugin for the mobile-worship peer layer.
//!
//! It starts the Python sidecar (bundled through `bundle.externalBin`, spawned with
//! `app.shell().sidecar("mobile-worship-sidecar")`), exposes its JSON-RPC methods as the
//! commands `start_peer`, `send_control_message`, `get_connected_peers`,
//! `get_leader_status`, `get_state`, `ping_peer` and `stop_peer`, re-emits its notifications
//! as the Tauri events `webrtc:connected`, `webrtc:disconnected`, `webrtc:message`,
//! `webrtc:state`, `webrtc:leader_changed`, `webrtc:peer_list_changed` and
//! `webrtc:network_changed`
//! (payload: the notification's params), restarts it with backoff if it dies (and calls `start_peer` again with the last
//! params, then emits `mobile-worship:rejoined`), and shuts it down when the app exits.
//! The sidecar's stderr lines and the plugin's supervision decisions are `tracing` events
//! (reaching `log`, e.g. `tauri-plugin-log`, when no subscriber is set).
//!
//! ```ignore
//! tauri::Builder::default()
//!     .plugin(tauri_plugin_shell::init()) // first: the sidecar is spawned through it
//!     .plugin(tauri_plugin_mobile_worship::init())
//!     .run(tauri::generate_context!())
//!     .expect("error while running tauri application");
//! ```

use std::sync::Mutex;

use serde_json::Value;
use sidecar_client::{ClientConfig, RestartPolicy, Supervisor, SupervisorConfig};
use tauri::plugin::{Builder as PluginBuilder, TauriPlugin};
use tauri::{AppHandle, Emitter, Manager, RunEvent, Runtime};

mod commands;
mod error;
pub mod keystore;
pub mod models;
mod shell;

pub use error::{Error, Result};
pub use keystore::KeyStore;
pub use models::{events, Rejoined, SidecarSource, SidecarStatus};
pub use sidecar_client;

use models::*;

/// Name of the bundled sidecar (`bundle.externalBin`: `binaries/mobile-worship-sidecar`).
pub const SIDECAR_NAME: &str = "mobile-worship-sidecar";

/// The plugin's state: the supervised sidecar.  Reach it with
/// [`MobileWorshipExt::mobile_worship`] from Rust.
pub struct MobileWorship<R: Runtime> {
    _runtime: std::marker::PhantomData<fn() -> R>,
    supervisor: Option<Supervisor>,
    startup_error: Option<String>,
    rejoin: bool,
    /// The params of the last successful `start_peer` (until `stop_peer`), for a rejoin
    /// after a restart.
    joined: Mutex<Option<Value>>,
    /// The room of the last `start_peer` (its key may come before its answer).
    room: Mutex<String>,
    /// The room keys kept across restarts (none when the app has no data directory).
    keys: Option<KeyStore>,
}

impl<R: Runtime> MobileWorship<R> {
    /// The supervisor of the running sidecar.
    pub fn supervisor(&self) -> Result<&Supervisor> {
        self.supervisor.as_ref().ok_or_else(|| {
            Error::Unavailable(self.startup_error.clone().unwrap_or_else(|| "not started".into()))
        })
    }

    /// Whether the sidecar runs, its pid and restart count.
    pub fn status(&self) -> SidecarStatus {
        match &self.supervisor {
            Some(s) => SidecarStatus {
                running: s.client().is_ok(),
                pid: s.pid(),
                restarts: s.restarts(),
                error: None,
            },
            None => {
                SidecarStatus { running: false, pid: None, restarts: 0, error: self.startup_error.clone() }
            }
        }
    }

    fn joined(&self) -> std::sync::MutexGuard<'_, Option<Value>> {
        self.joined.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Calls `method` of the sidecar with JSON params (`Value::Null`: none) and returns its
    /// JSON result, both unchanged.
    pub async fn call_json(&self, method: &str, params: Value) -> Result<Value> {
        Ok(self.supervisor()?.client()?.call::<Value>(method, params).await?)
    }

    /// `start_peer` with JSON params, remembered for a rejoin after a restart.
    pub async fn start_peer_json(&self, params: Value) -> Result<Value> {
        *self.room.lock().unwrap_or_else(|e| e.into_inner()) = room_of(&params);
        let info = self.call_json("start_peer", params.clone()).await?;
        *self.joined() = Some(params);
        Ok(info)
    }

    pub async fn start_peer(&self, params: StartPeerParams) -> Result<PeerInfo> {
        let params = serde_json::to_value(&params).map_err(|e| Error::InvalidArgs(e.to_string()))?;
        let info = self.start_peer_json(params).await?;
        serde_json::from_value(info).map_err(|source| {
            Error::Sidecar(sidecar_client::Error::Decode { method: "start_peer".into(), source })
        })
    }

    pub async fn send_control_message(&self, params: &SendControlMessageParams) -> Result<SendResult> {
        Ok(self.supervisor()?.send_control_message(params).await?)
    }

    pub async fn get_connected_peers(&self) -> Result<Vec<PeerInfo>> {
        Ok(self.supervisor()?.get_connected_peers().await?)
    }

    pub async fn get_leader_status(&self) -> Result<LeaderStatus> {
        Ok(self.supervisor()?.get_leader_status().await?)
    }

    pub async fn ping_peer(&self, peer_id: &str) -> Result<PingResult> {
        Ok(self.supervisor()?.ping_peer(peer_id).await?)
    }

    pub async fn get_state(&self) -> Result<Vec<StateEntry>> {
        Ok(self.supervisor()?.get_state().await?)
    }

    pub async fn stop_peer(&self) -> Result<()> {
        *self.joined() = None;
        Ok(self.supervisor()?.stop_peer().await?)
    }

    /// Close the sidecar's stdin, wait up to 3 s, then kill its process tree.  Done by the
    /// plugin on `RunEvent::Exit`.
    pub async fn shutdown(&self) -> Option<ExitInfo> {
        match &self.supervisor {
            Some(s) => s.shutdown().await,
            None => None,
        }
    }

    /// A room key this device got (created, paired, rotated) replaces the one of the
    /// remembered `start_peer` params, so a rejoin after a restart uses it (and not a
    /// used-up pairing code, nor a key the room has rotated away from), and is kept for
    /// the app's next start ([`KeyStore`]).
    fn remember_room_key(&self, room: Option<&str>, room_key: &str) {
        let mut joined = self.joined();
        if let Some(params) = joined.as_mut() {
            *params = with_room_key(params, room_key);
        }
        drop(joined);
        let room = room
            .map(str::to_owned)
            .unwrap_or_else(|| self.room.lock().unwrap_or_else(|e| e.into_inner()).clone());
        if let Some(keys) = &self.keys {
            if let Err(e) = keys.put(&room, room_key) {
                tracing::error!(error = %e, path = %keys.path().display(), "could not keep the room key");
            }
        }
    }

    /// The room key kept for `room` by an earlier run, if any.
    pub fn saved_room_key(&self, room: &str) -> Option<String> {
        self.keys.as_ref().and_then(|k| k.get(room))
    }

    /// Forget the key kept for `room` (the person chose to leave the room on this device).
    pub fn forget_room_key(&self, room: &str) -> Result<()> {
        match &self.keys {
            Some(keys) => {
                keys.forget(room).map_err(|e| Error::Unavailable(format!("cannot forget the key: {e}")))
            }
            None => Ok(()),
        }
    }

    /// After a restart the new sidecar is idle: join again with the last params (the same
    /// room, key and options; the new process has a new peer id).
    async fn rejoin(&self, restart: u32) -> Rejoined {
        let params = self.joined().clone();
        let Some(params) = params.filter(|_| self.rejoin) else {
            tracing::info!(restart, "sidecar restarted; no room to rejoin");
            return Rejoined { restart, peer: None, error: None };
        };
        let rejoined = match self.supervisor() {
            Ok(sup) => match sup.client() {
                Ok(client) => client.call::<PeerInfo>("start_peer", params).await.map_err(Error::from),
                Err(e) => Err(Error::from(e)),
            },
            Err(e) => Err(e),
        };
        match rejoined {
            Ok(info) => {
                tracing::info!(restart, peer_id = %info.peer_id, "rejoined the room after a sidecar restart");
                Rejoined { restart, peer: Some(info), error: None }
            }
            Err(e) => {
                tracing::warn!(restart, error = %e, "could not rejoin the room after a sidecar restart");
                Rejoined { restart, peer: None, error: Some(e) }
            }
        }
    }
}

/// Access to the plugin's state from an `App`, `AppHandle` or `Window`.
pub trait MobileWorshipExt<R: Runtime> {
    fn mobile_worship(&self) -> &MobileWorship<R>;
}

impl<R: Runtime, T: Manager<R>> MobileWorshipExt<R> for T {
    fn mobile_worship(&self) -> &MobileWorship<R> {
        self.state::<MobileWorship<R>>().inner()
    }
}

/// Configures the plugin; [`init`] is `Builder::new().build()`.
#[derive(Debug, Clone)]
pub struct Builder {
    source: SidecarSource,
    config: SupervisorConfig,
    rejoin: bool,
}

impl Default for Builder {
    fn default() -> Self {
        Self {
            source: SidecarSource::default(),
            config: SupervisorConfig {
                client: ClientConfig::default(),
                restart: Some(RestartPolicy::default()),
            },
            rejoin: true,
        }
    }
}

impl Builder {
    pub fn new() -> Self {
        Self::default()
    }

    /// Run the bundled sidecar `name` (default `mobile-worship-sidecar`) with `args`.
    pub fn sidecar(
        mut self,
        name: impl Into<String>,
        args: impl IntoIterator<Item = impl Into<String>>,
    ) -> Self {
        self.source =
            SidecarSource::Shell { name: name.into(), args: args.into_iter().map(Into::into).collect() };
        self
    }

    /// Run this command instead of the bundled sidecar (e.g. the Python dev environment).
    /// In debug builds, `MW_SIDECAR_BIN` (a command line) overrides either.
    pub fn command(mut self, command: sidecar_client::SidecarCommand) -> Self {
        self.source = SidecarSource::Command(command);
        self
    }

    /// Per-call timeout, shutdown grace, channel sizes.
    pub fn client_config(mut self, config: ClientConfig) -> Self {
        self.config.client = config;
        self
    }

    /// Restart policy; `None`: a dead sidecar stays dead.
    pub fn restart(mut self, policy: Option<RestartPolicy>) -> Self {
        self.config.restart = policy;
        self
    }

    /// Whether to call `start_peer` again (last params) after a restart.  Default true.
    pub fn rejoin_after_restart(mut self, on: bool) -> Self {
        self.rejoin = on;
        self
    }

    pub fn build<R: Runtime>(self) -> TauriPlugin<R> {
        let Builder { source, config, rejoin } = self;
        PluginBuilder::new("mobile-worship")
            .invoke_handler(tauri::generate_handler![
                commands::start_peer,
                commands::send_control_message,
                commands::get_connected_peers,
                commands::get_leader_status,
                commands::get_state,
                commands::open_pairing,
                commands::close_pairing,
                commands::rotate_room_key,
                commands::saved_room_key,
                commands::forget_room_key,
                commands::ping_peer,
                commands::stop_peer,
            ])
            .setup(move |app, _api| {
                let source = dev_override().unwrap_or(source);
                // Plugins are set up in the order they were added, under a lock that
                // `app.plugin()` would take again: the shell plugin cannot be added from
                // here, it must come first.
                if matches!(source, SidecarSource::Shell { .. })
                    && app.try_state::<tauri_plugin_shell::Shell<R>>().is_none()
                {
                    return Err("tauri-plugin-mobile-worship needs tauri-plugin-shell: add \
                                `.plugin(tauri_plugin_shell::init())` before `.plugin(tauri_plugin_mobile_worship::init())`"
                        .into());
                }
                let runtime = tauri::async_runtime::handle();
                let _context = runtime.inner().enter();
                let started = match source {
                    SidecarSource::Shell { name, args } => {
                        Supervisor::start(shell::ShellLauncher { app: app.clone(), name, args }, config)
                    }
                    SidecarSource::Command(command) => Supervisor::start(command, config),
                };
                let (supervisor, startup_error) = match started {
                    Ok(s) => {
                        // later lifecycle events are logged by `forward`
                        tracing::info!(pid = ?s.pid(), "sidecar started");
                        (Some(s), None)
                    }
                    Err(e) => {
                        // The app still runs; commands answer `unavailable` with the reason.
                        tracing::error!(error = %e, "the mobile-worship sidecar could not be started");
                        (None, Some(e.to_string()))
                    }
                };
                if let Some(s) = &supervisor {
                    forward(app.clone(), s);
                }
                let keys = app.path().app_data_dir().ok().map(|dir| KeyStore::new(&dir));
                app.manage(MobileWorship::<R> {
                    _runtime: std::marker::PhantomData,
                    supervisor,
                    startup_error,
                    rejoin,
                    joined: Mutex::new(None),
                    room: Mutex::new("default".into()),
                    keys,
                });
                Ok(())
            })
            .on_event(|app, event| {
                if let RunEvent::Exit = event {
                    if let Some(state) = app.try_state::<MobileWorship<R>>() {
                        let exit = tauri::async_runtime::block_on(state.shutdown());
                        tracing::debug!(?exit, "mobile-worship sidecar stopped");
                    }
                }
            })
            .build()
    }
}

/// The plugin with its defaults: the bundled `mobile-worship-sidecar`, restarts with
/// backoff, rejoin after a restart.
pub fn init<R: Runtime>() -> TauriPlugin<R> {
    Builder::new().build()
}

fn dev_override() -> Option<SidecarSource> {
    if !cfg!(debug_assertions) {
        return None;
    }
    let line = std::env::var("MW_SIDECAR_BIN").ok()?;
    sidecar_client::SidecarCommand::from_command_line(&line).map(SidecarSource::Command)
}

/// `start_peer` params with `room_key` set to `key`, and none of the other ways to a key
/// (a used-up pairing code or token, `create_room_key`, which would make another room).
fn with_room_key(params: &Value, key: &str) -> Value {
    let mut params = params.clone();
    if let Some(map) = params.as_object_mut() {
        map.insert("room_key".into(), Value::String(key.into()));
        for other in ["pairing_code", "pairing_token", "create_room_key"] {
            map.remove(other);
        }
    }
    params
}

/// The room `start_peer` params ask for (`default` when they name none).
fn room_of(params: &Value) -> String {
    params.get("room").and_then(Value::as_str).unwrap_or("default").to_owned()
}

/// The supervisor's decisions, for the app's log (target `tauri_plugin_mobile_worship`).
fn log_lifecycle(event: &SidecarEvent) {
    match event {
        SidecarEvent::Started { pid, restart: 0 } => tracing::info!(?pid, "sidecar started"),
        SidecarEvent::Started { pid, restart } => tracing::warn!(?pid, restart, "sidecar restarted"),
        SidecarEvent::Exited { exit } => tracing::warn!(?exit, "sidecar exited"),
        SidecarEvent::Restarting { attempt, delay_ms } => {
            tracing::info!(attempt, delay_ms, "sidecar will be restarted")
        }
        SidecarEvent::RestartFailed { attempt, error } => {
            tracing::error!(attempt, %error, "sidecar restart failed")
        }
        SidecarEvent::GaveUp { attempts } => tracing::error!(attempts, "sidecar gave up: no more restarts"),
    }
}

/// Notifications become Tauri events named like their method; lifecycle events go out as
/// `mobile-worship:sidecar`, and a restart triggers a rejoin.
fn forward<R: Runtime>(app: AppHandle<R>, supervisor: &Supervisor) {
    use tokio::sync::broadcast::error::RecvError;

    let mut notes = supervisor.subscribe();
    let handle = app.clone();
    tauri::async_runtime::spawn(async move {
        loop {
            match notes.recv().await {
                Ok(note) => {
                    let params = note.params_json();
                    if note.method() == events::PAIRED || note.method() == events::ROOM_KEY {
                        if let (Some(key), Some(state)) = (
                            params.get("room_key").and_then(Value::as_str),
                            handle.try_state::<MobileWorship<R>>(),
                        ) {
                            let room = params.get("room").and_then(Value::as_str);
                            state.remember_room_key(room, key);
                        }
                    }
                    if let Err(e) = handle.emit(note.method(), params) {
                        tracing::warn!(method = note.method(), error = %e, "could not emit a sidecar notification");
                    }
                }
                Err(RecvError::Lagged(n)) => {
                    tracing::warn!(skipped = n, "webview event forwarding fell behind")
                }
                Err(RecvError::Closed) => break,
            }
        }
    });
    let mut lifecycle = supervisor.events();
    tauri::async_runtime::spawn(async move {
        loop {
            match lifecycle.recv().await {
                Ok(event) => {
                    log_lifecycle(&event);
                    let _ = app.emit(events::SIDECAR, &event);
                    if let SidecarEvent::Started { restart, .. } = event {
                        if restart > 0 {
                            if let Some(state) = app.try_state::<MobileWorship<R>>() {
                                let rejoined = state.rejoin(restart).await;
                                let _ = app.emit(events::REJOINED, &rejoined);
                            }
                        }
                    }
                }
                Err(RecvError::Lagged(_)) => continue,
                Err(RecvError::Closed) => break,
            }
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_new_room_key_replaces_the_key_and_the_pairing_code_of_the_rejoin() {
        let paired = json!({"name": "Lobby", "peer_type": "display", "pairing_code": "123456"});
        assert_eq!(
            with_room_key(&paired, "k".repeat(22).as_str()),
            json!({"name": "Lobby", "peer_type": "display", "room_key": "k".repeat(22)})
        );
        let keyed = json!({"name": "Booth", "peer_type": "controller", "room_key": "old-key-of-the-room"});
        assert_eq!(with_room_key(&keyed, "new")["room_key"], json!("new"));
        // The first device of a room: rejoining must not make another room.
        let created = json!({"name": "Booth", "peer_type": "controller", "create_room_key": true});
        assert_eq!(
            with_room_key(&created, "k"),
            json!({"name": "Booth", "peer_type": "controller", "room_key": "k"})
        );
    }
}
