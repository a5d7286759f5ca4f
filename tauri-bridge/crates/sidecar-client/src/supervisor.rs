//! A sidecar that is started again, with backoff, when it dies.

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use tokio::sync::{broadcast, watch};
use tokio::task::JoinHandle;

use crate::client::{Client, ClientConfig, SidecarEvent};
use crate::error::{Error, Result};
use crate::transport::{ExitInfo, Launcher};
use crate::types::{
    LeaderStatus, Notification, PeerInfo, PingResult, SendControlMessageParams, SendResult, StartPeerParams,
    StateEntry,
};

/// When and how often to start a dead sidecar again.
#[derive(Debug, Clone)]
pub struct RestartPolicy {
    /// Give up after this many restarts in a row (`None`: never give up).
    pub max_restarts: Option<u32>,
    /// Delay before the first restart; doubles at every further one.
    pub initial_backoff: Duration,
    /// Upper bound of the delay.
    pub max_backoff: Duration,
    /// A process that ran this long resets the count and the delay.
    pub stable_after: Duration,
}

impl Default for RestartPolicy {
    fn default() -> Self {
        Self {
            max_restarts: Some(10),
            initial_backoff: Duration::from_millis(250),
            max_backoff: Duration::from_secs(10),
            stable_after: Duration::from_secs(30),
        }
    }
}

impl RestartPolicy {
    /// The delay before restart number `attempt` (1-based).
    pub fn backoff(&self, attempt: u32) -> Duration {
        let factor = 2u32.saturating_pow(attempt.saturating_sub(1).min(16));
        self.initial_backoff.saturating_mul(factor).min(self.max_backoff)
    }
}

/// Knobs of a [`Supervisor`].
#[derive(Debug, Clone, Default)]
pub struct SupervisorConfig {
    pub client: ClientConfig,
    /// `None`: a dead sidecar stays dead (calls fail with [`Error::SidecarExited`]).
    pub restart: Option<RestartPolicy>,
}

struct Inner {
    launcher: Arc<dyn Launcher>,
    config: SupervisorConfig,
    current: Mutex<Option<Client>>,
    notifications: broadcast::Sender<Notification>,
    events: broadcast::Sender<SidecarEvent>,
    stop: watch::Sender<bool>,
    restarts: AtomicU32,
    monitor: Mutex<Option<JoinHandle<()>>>,
}

impl Inner {
    fn current(&self) -> MutexGuard<'_, Option<Client>> {
        self.current.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn stopping(&self) -> bool {
        *self.stop.borrow()
    }
}

/// Runs the sidecar and keeps it running: one [`Client`] at a time, the notification and
/// event channels shared across restarts, so subscribers never need to resubscribe.
///
/// After a restart the new sidecar is idle: whoever called `start_peer` must call it
/// again (the Tauri plugin does so itself).  [`SidecarEvent::Started`] with `restart > 0`
/// says when.
#[derive(Clone)]
pub struct Supervisor {
    inner: Arc<Inner>,
}

impl Supervisor {
    /// Launch the first sidecar now (its failure is returned) and supervise it.  Must be
    /// called within a tokio runtime.
    pub fn start(launcher: impl Launcher, config: SupervisorConfig) -> Result<Self> {
        let launcher: Arc<dyn Launcher> = Arc::new(launcher);
        let capacity = config.client.channel_capacity.max(1);
        let notifications = broadcast::channel(capacity).0;
        let events = broadcast::channel(capacity).0;
        let spawned =
            launcher.launch().map_err(|source| Error::Spawn { program: launcher.describe(), source })?;
        let client =
            Client::with_channels(spawned, config.client.clone(), notifications.clone(), events.clone(), 0);
        let inner = Arc::new(Inner {
            launcher,
            config,
            current: Mutex::new(Some(client)),
            notifications,
            events,
            stop: watch::channel(false).0,
            restarts: AtomicU32::new(0),
            monitor: Mutex::new(None),
        });
        let handle = tokio::spawn(monitor(inner.clone()));
        *inner.monitor.lock().unwrap_or_else(|e| e.into_inner()) = Some(handle);
        Ok(Self { inner })
    }

    /// The client of the sidecar running now.
    pub fn client(&self) -> Result<Client> {
        if self.inner.stopping() {
            return Err(Error::Closed);
        }
        match self.inner.current().as_ref() {
            Some(c) if c.is_alive() => Ok(c.clone()),
            Some(c) => Err(Error::SidecarExited(c.exit_info().unwrap_or_else(unknown_exit))),
            None => Err(Error::NotRunning(None)),
        }
    }

    /// Every notification from now on, from whichever sidecar is running.
    pub fn subscribe(&self) -> broadcast::Receiver<Notification> {
        self.inner.notifications.subscribe()
    }

    /// Lifecycle events from now on (started, exited, restarting, ...).
    pub fn events(&self) -> broadcast::Receiver<SidecarEvent> {
        self.inner.events.subscribe()
    }

    /// How many times the sidecar was restarted.
    pub fn restarts(&self) -> u32 {
        self.inner.restarts.load(Ordering::Relaxed)
    }

    /// The running sidecar's pid.
    pub fn pid(&self) -> Option<u32> {
        self.inner.current().as_ref().and_then(Client::pid)
    }

    /// Stop restarting and shut the running sidecar down (see [`Client::shutdown`]).
    pub async fn shutdown(&self) -> Option<ExitInfo> {
        self.inner.stop.send_replace(true);
        let client = self.inner.current().clone();
        let info = match client {
            Some(c) => Some(c.shutdown().await),
            None => None,
        };
        let monitor = self.inner.monitor.lock().unwrap_or_else(|e| e.into_inner()).take();
        if let Some(handle) = monitor {
            if tokio::time::timeout(Duration::from_secs(1), handle).await.is_err() {
                tracing::debug!("sidecar monitor did not stop in time");
            }
        }
        // A sidecar launched while we were stopping.
        let late = self.inner.current().clone();
        if let Some(c) = late {
            if c.is_alive() {
                c.shutdown().await;
            }
        }
        info
    }

    pub async fn start_peer(&self, params: &StartPeerParams) -> Result<PeerInfo> {
        self.client()?.start_peer(params).await
    }

    pub async fn send_control_message(&self, params: &SendControlMessageParams) -> Result<SendResult> {
        self.client()?.send_control_message(params).await
    }

    pub async fn get_connected_peers(&self) -> Result<Vec<PeerInfo>> {
        self.client()?.get_connected_peers().await
    }

    pub async fn get_leader_status(&self) -> Result<LeaderStatus> {
        self.client()?.get_leader_status().await
    }

    pub async fn ping_peer(&self, peer_id: &str) -> Result<PingResult> {
        self.client()?.ping_peer(peer_id).await
    }

    pub async fn get_state(&self) -> Result<Vec<StateEntry>> {
        self.client()?.get_state().await
    }

    pub async fn stop_peer(&self) -> Result<()> {
        self.client()?.stop_peer().await
    }
}

fn unknown_exit() -> ExitInfo {
    ExitInfo { code: None, signal: None, expected: false, stderr_tail: vec![] }
}

async fn monitor(inner: Arc<Inner>) {
    let mut stop = inner.stop.subscribe();
    let mut attempt: u32 = 0;
    loop {
        let Some(client) = inner.current().clone() else { return };
        let started = Instant::now();
        let exit = client.wait_exit().await;
        if inner.stopping() || exit.expected {
            return;
        }
        let Some(policy) = inner.config.restart.clone() else { return };
        if started.elapsed() >= policy.stable_after {
            attempt = 0;
        }
        loop {
            if policy.max_restarts.is_some_and(|max| attempt >= max) {
                tracing::error!(attempts = attempt, "sidecar keeps dying: no more restarts");
                let _ = inner.events.send(SidecarEvent::GaveUp { attempts: attempt });
                return;
            }
            attempt += 1;
            let delay = policy.backoff(attempt);
            tracing::info!(attempt, ?delay, "restarting the sidecar");
            let _ =
                inner.events.send(SidecarEvent::Restarting { attempt, delay_ms: delay.as_millis() as u64 });
            tokio::select! {
                _ = tokio::time::sleep(delay) => {}
                _ = stop.wait_for(|s| *s) => return,
            }
            if inner.stopping() {
                return;
            }
            match inner.launcher.launch() {
                Ok(spawned) => {
                    let n = inner.restarts.fetch_add(1, Ordering::Relaxed) + 1;
                    let client = Client::with_channels(
                        spawned,
                        inner.config.client.clone(),
                        inner.notifications.clone(),
                        inner.events.clone(),
                        n,
                    );
                    *inner.current() = Some(client);
                    break;
                }
                Err(e) => {
                    tracing::warn!(attempt, error = %e, "could not restart the sidecar");
                    let _ = inner.events.send(SidecarEvent::RestartFailed { attempt, error: e.to_string() });
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_up_to_the_cap() {
        let p = RestartPolicy {
            initial_backoff: Duration::from_millis(100),
            max_backoff: Duration::from_millis(1000),
            ..RestartPolicy::default()
        };
        let ms: Vec<u128> = (1..=6).map(|a| p.backoff(a).as_millis()).collect();
        assert_eq!(ms, [100, 200, 400, 800, 1000, 1000]);
        assert_eq!(p.backoff(u32::MAX), Duration::from_millis(1000));
    }
}
