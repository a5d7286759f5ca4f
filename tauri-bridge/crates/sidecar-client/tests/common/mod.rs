//! Helpers shared by the integration tests.
#![allow(dead_code)]

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use sidecar_client::SidecarCommand;

/// The repository root: the first ancestor of this crate holding the sidecar's pyproject.
pub fn repo_root() -> PathBuf {
    let here = Path::new(env!("CARGO_MANIFEST_DIR"));
    for dir in here.ancestors() {
        let pyproject = dir.join("pyproject.toml");
        if std::fs::read_to_string(&pyproject).is_ok_and(|s| s.contains("mobile-worship-sidecar")) {
            return dir.to_path_buf();
        }
    }
    panic!("no pyproject.toml of mobile-worship-sidecar above {}", here.display());
}

/// The command that runs the real sidecar: `$MW_SIDECAR_BIN` (a command line), else the
/// repo's `.venv/bin/mobile-worship-sidecar`, else `uv run --project <repo> ...`.
pub fn sidecar_command() -> SidecarCommand {
    if let Ok(line) = std::env::var("MW_SIDECAR_BIN") {
        if let Some(cmd) = SidecarCommand::from_command_line(&line) {
            return cmd;
        }
    }
    let root = repo_root();
    let venv = root.join(".venv/bin/mobile-worship-sidecar");
    if venv.exists() {
        return SidecarCommand::new(venv);
    }
    SidecarCommand::new("uv").arg("run").arg("--project").arg(root).arg("mobile-worship-sidecar")
}

/// A fake child: `python3 -c SCRIPT`, unbuffered.
pub fn fake_child(script: &str) -> SidecarCommand {
    SidecarCommand::new("python3").arg("-u").arg("-c").arg(script)
}

/// Whether a process with this pid still exists (a zombie counts as gone).
pub fn process_exists(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => stat.rsplit(')').next().and_then(|s| s.split_whitespace().next()) != Some("Z"),
        Err(_) => false,
    }
}

/// Poll `cond` every 20 ms until it holds or `timeout` passes.
pub async fn eventually(timeout: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + timeout;
    loop {
        if cond() {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Captures `tracing` output of the current thread (the tests' runtime is current-thread,
/// so the client's tasks log here too).
#[derive(Clone, Default)]
pub struct LogCapture(Arc<Mutex<Vec<u8>>>);

impl LogCapture {
    pub fn install(&self) -> tracing::subscriber::DefaultGuard {
        let writer = self.clone();
        let subscriber = tracing_subscriber::fmt()
            .with_max_level(tracing::Level::DEBUG)
            .with_ansi(false)
            .with_writer(move || writer.clone())
            .finish();
        tracing::subscriber::set_default(subscriber)
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().unwrap()).into_owned()
    }
}

impl Write for LogCapture {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}
