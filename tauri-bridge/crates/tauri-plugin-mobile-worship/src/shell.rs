//! tauri-plugin-shell's `CommandChild` + `CommandEvent` receiver as a sidecar-client transport.

use std::io;
use std::sync::{Arc, Mutex};

use sidecar_client::transport::BoxFuture;
use sidecar_client::{ChildEvent, Launcher, ProcessControl, Spawned, StdinWriter};
use tauri::{AppHandle, Runtime};
use tauri_plugin_shell::process::{CommandChild, CommandEvent};
use tauri_plugin_shell::ShellExt;
use tokio::sync::mpsc;

fn io_error(e: impl std::fmt::Display) -> io::Error {
    io::Error::other(e.to_string())
}

/// Launches the bundled sidecar through tauri-plugin-shell (first time and restarts).
pub(crate) struct ShellLauncher<R: Runtime> {
    pub(crate) app: AppHandle<R>,
    pub(crate) name: String,
    pub(crate) args: Vec<String>,
}

impl<R: Runtime> Launcher for ShellLauncher<R> {
    fn launch(&self) -> io::Result<Spawned> {
        spawn_sidecar(&self.app, &self.name, &self.args)
    }

    fn describe(&self) -> String {
        format!("{} (bundled sidecar)", self.name)
    }
}

/// Spawn the bundled sidecar `name` through `app.shell().sidecar(name)`.
///
/// Raw output (the shell's own line mode also splits at a lone `\r`; sidecar-client frames
/// lines itself) and a process group of its own (so a PyInstaller bootloader's child dies
/// with it).
pub(crate) fn spawn_sidecar<R: Runtime>(
    app: &AppHandle<R>,
    name: &str,
    args: &[String],
) -> io::Result<Spawned> {
    let (mut rx, child) = app
        .shell()
        .sidecar(name)
        .map_err(io_error)?
        .args(args)
        .set_raw_out(true)
        .set_process_group(true)
        .spawn()
        .map_err(io_error)?;
    let pid = child.pid();
    let (tx, events) = mpsc::channel(64);
    tauri::async_runtime::spawn(async move {
        while let Some(event) = rx.recv().await {
            let event = match event {
                CommandEvent::Stdout(bytes) => ChildEvent::Stdout(bytes),
                CommandEvent::Stderr(bytes) => ChildEvent::Stderr(bytes),
                CommandEvent::Error(e) => ChildEvent::Error(e),
                CommandEvent::Terminated(p) => ChildEvent::Exited { code: p.code, signal: p.signal },
                _ => continue,
            };
            if tx.send(event).await.is_err() {
                break;
            }
        }
    });
    let child = Arc::new(Mutex::new(Some(child)));
    Ok(Spawned {
        description: format!("{name} (bundled sidecar)"),
        stdin: Box::new(ShellStdin { child: child.clone() }),
        events,
        control: Arc::new(ShellControl { pid, child }),
    })
}

type Holder = Arc<Mutex<Option<CommandChild>>>;

fn lock(holder: &Holder) -> std::sync::MutexGuard<'_, Option<CommandChild>> {
    holder.lock().unwrap_or_else(|e| e.into_inner())
}

struct ShellStdin {
    child: Holder,
}

impl StdinWriter for ShellStdin {
    fn write_all(&mut self, buf: Vec<u8>) -> BoxFuture<'_, io::Result<()>> {
        let holder = self.child.clone();
        Box::pin(async move {
            // CommandChild::write is a blocking pipe write.
            tauri::async_runtime::spawn_blocking(move || match lock(&holder).as_mut() {
                Some(child) => child.write(&buf).map_err(io_error),
                None => Err(io::Error::new(io::ErrorKind::BrokenPipe, "stdin is closed")),
            })
            .await
            .map_err(io_error)?
        })
    }

    fn close(&mut self) {
        // Dropping the CommandChild closes its stdin; it does not kill (kill_on_drop is off).
        drop(lock(&self.child).take());
    }
}

struct ShellControl {
    pid: u32,
    child: Holder,
}

impl ProcessControl for ShellControl {
    fn pid(&self) -> Option<u32> {
        Some(self.pid)
    }

    fn kill_tree(&self) -> io::Result<()> {
        // The sidecar leads its own process group (set_process_group), which outlives the
        // CommandChild handle: kill the group by its id.
        #[cfg(unix)]
        {
            let _ = &self.child;
            sidecar_client::transport::kill_process_group(self.pid)
        }
        #[cfg(not(unix))]
        {
            match lock(&self.child).take() {
                // Terminates the job object, i.e. the whole tree.
                Some(child) => child.kill().map_err(io_error),
                None => std::process::Command::new("taskkill")
                    .args(["/PID", &self.pid.to_string(), "/T", "/F"])
                    .output()
                    .map(|_| ()),
            }
        }
    }
}
