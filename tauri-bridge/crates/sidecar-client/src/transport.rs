//! What the client needs from a child process, whoever spawned it.
//!
//! A [`Spawned`] child is three things: a [`StdinWriter`] (bytes in, and a way to close
//! stdin), a stream of [`ChildEvent`]s (stdout and stderr bytes in any chunking, then one
//! [`ChildEvent::Exited`]), and a [`ProcessControl`] (pid, kill the whole tree).
//!
//! [`SidecarCommand`] produces one with `tokio::process`, in its own process group on unix.
//! The Tauri plugin produces one from tauri-plugin-shell's `CommandChild` and
//! `CommandEvent` receiver.  Any other source (a test double, an SSH channel) works the
//! same way.  A [`Launcher`] makes a fresh one on demand, for restarts.

use std::ffi::{OsStr, OsString};
use std::fmt;
use std::future::Future;
use std::io;
use std::path::PathBuf;
use std::pin::Pin;
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::mpsc;

/// A boxed, sendable future (what [`StdinWriter::write_all`] returns).
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// One thing that happened to the child.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ChildEvent {
    /// Bytes from stdout, chunked arbitrarily.
    Stdout(Vec<u8>),
    /// Bytes from stderr, chunked arbitrarily.
    Stderr(Vec<u8>),
    /// A transport-level problem worth logging (e.g. a read error); not fatal by itself.
    Error(String),
    /// The child exited.  The last event; stdout sent before the exit comes first.
    Exited { code: Option<i32>, signal: Option<i32> },
}

/// How a sidecar process ended.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExitInfo {
    /// Exit code, when it exited on its own.
    pub code: Option<i32>,
    /// The signal that ended it (unix).
    pub signal: Option<i32>,
    /// True when the exit followed [`Client::shutdown`](crate::Client::shutdown).
    pub expected: bool,
    /// Its last lines of stderr (at most 20), for the error message and the logs.
    pub stderr_tail: Vec<String>,
}

impl fmt::Display for ExitInfo {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("sidecar exited")?;
        match (self.code, self.signal) {
            (Some(code), _) => write!(f, " with code {code}")?,
            (None, Some(sig)) => write!(f, ", killed by signal {sig}")?,
            (None, None) => f.write_str(" (status unknown)")?,
        }
        if let Some(last) = self.stderr_tail.last() {
            write!(f, "; last stderr line: {last}")?;
        }
        Ok(())
    }
}

/// The child's stdin.
pub trait StdinWriter: Send + 'static {
    /// Write all of `buf` (one or more complete lines).
    fn write_all(&mut self, buf: Vec<u8>) -> BoxFuture<'_, io::Result<()>>;
    /// Close stdin (the child sees EOF).  Idempotent.
    fn close(&mut self);
}

/// Control over the child process (and whatever it spawned).
pub trait ProcessControl: Send + Sync + 'static {
    /// The child's pid, if known.
    fn pid(&self) -> Option<u32>;
    /// Kill the child and its descendants at once (SIGKILL to the process group on unix).
    /// Idempotent and safe after the child exited.
    fn kill_tree(&self) -> io::Result<()>;
}

/// A running child, ready for [`Client::new`](crate::Client::new).
pub struct Spawned {
    /// A human-readable name for logs and errors (e.g. the program path).
    pub description: String,
    pub stdin: Box<dyn StdinWriter>,
    pub events: mpsc::Receiver<ChildEvent>,
    pub control: Arc<dyn ProcessControl>,
}

impl fmt::Debug for Spawned {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Spawned")
            .field("description", &self.description)
            .field("pid", &self.control.pid())
            .finish_non_exhaustive()
    }
}

/// Makes a new child on demand (the first one, and after a crash).
pub trait Launcher: Send + Sync + 'static {
    /// Start a new child.  Called from within a tokio runtime.
    fn launch(&self) -> io::Result<Spawned>;
    /// What is launched, for logs and errors.
    fn describe(&self) -> String;
}

impl<F> Launcher for F
where
    F: Fn() -> io::Result<Spawned> + Send + Sync + 'static,
{
    fn launch(&self) -> io::Result<Spawned> {
        self()
    }

    fn describe(&self) -> String {
        "sidecar".to_owned()
    }
}

// ---------------------------------------------------------------------------------------
// tokio::process

/// A sidecar command run with `tokio::process`: stdin, stdout and stderr piped; on unix in
/// a process group of its own, so [`ProcessControl::kill_tree`] reaches its children too.
#[derive(Debug, Clone)]
pub struct SidecarCommand {
    program: OsString,
    args: Vec<OsString>,
    envs: Vec<(OsString, OsString)>,
    current_dir: Option<PathBuf>,
    process_group: bool,
}

impl SidecarCommand {
    /// `program` (a path, or a name looked up on `PATH`).
    pub fn new(program: impl AsRef<OsStr>) -> Self {
        Self {
            program: program.as_ref().to_owned(),
            args: Vec::new(),
            envs: Vec::new(),
            current_dir: None,
            process_group: true,
        }
    }

    /// A command line split on whitespace (no quoting), e.g. `uv run mobile-worship-sidecar`.
    /// `None` if it has no words.
    pub fn from_command_line(line: &str) -> Option<Self> {
        let mut words = line.split_whitespace();
        let program = words.next()?;
        Some(Self::new(program).args(words))
    }

    /// The same command run through a wrapper, e.g. `ip netns exec NS <this command>`.
    pub fn wrapped<I, S>(self, wrapper: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        let mut words: Vec<OsString> = wrapper.into_iter().map(|s| s.as_ref().to_owned()).collect();
        if words.is_empty() {
            return self;
        }
        let program = words.remove(0);
        words.push(self.program);
        words.extend(self.args);
        Self { program, args: words, ..self }
    }

    pub fn arg(mut self, arg: impl AsRef<OsStr>) -> Self {
        self.args.push(arg.as_ref().to_owned());
        self
    }

    pub fn args<I, S>(mut self, args: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        self.args.extend(args.into_iter().map(|s| s.as_ref().to_owned()));
        self
    }

    pub fn env(mut self, key: impl AsRef<OsStr>, value: impl AsRef<OsStr>) -> Self {
        self.envs.push((key.as_ref().to_owned(), value.as_ref().to_owned()));
        self
    }

    pub fn current_dir(mut self, dir: impl Into<PathBuf>) -> Self {
        self.current_dir = Some(dir.into());
        self
    }

    /// Whether to start it in a new process group (unix; default true).  Without one,
    /// `kill_tree` kills the child alone.
    pub fn process_group(mut self, on: bool) -> Self {
        self.process_group = on;
        self
    }

    /// The program, as given.
    pub fn program(&self) -> &OsStr {
        &self.program
    }

    /// The arguments, as given.
    pub fn get_args(&self) -> impl Iterator<Item = &OsStr> {
        self.args.iter().map(OsString::as_os_str)
    }

    /// Start it.  Must be called within a tokio runtime.
    pub fn spawn(&self) -> io::Result<Spawned> {
        let mut cmd = tokio::process::Command::new(&self.program);
        cmd.args(&self.args)
            .envs(self.envs.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            // Dropped without shutdown: stdin closes and the sidecar leaves on EOF by itself.
            .kill_on_drop(false);
        if let Some(dir) = &self.current_dir {
            cmd.current_dir(dir);
        }
        #[cfg(unix)]
        if self.process_group {
            cmd.process_group(0);
        }
        let mut child = cmd.spawn()?;
        let pid = child.id();
        let stdin = child.stdin.take().expect("stdin is piped");
        let stdout = child.stdout.take().expect("stdout is piped");
        let stderr = child.stderr.take().expect("stderr is piped");
        let (tx, rx) = mpsc::channel(64);
        let (kill_tx, kill_rx) = tokio::sync::oneshot::channel::<()>();

        let out_task = tokio::spawn(pump(stdout, tx.clone(), ChildEvent::Stdout));
        let err_task = tokio::spawn(pump(stderr, tx.clone(), ChildEvent::Stderr));
        tokio::spawn(async move {
            let status = tokio::select! {
                s = child.wait() => s,
                _ = kill_rx => {
                    let _ = child.start_kill();
                    child.wait().await
                }
            };
            // Exited must come after the last stdout bytes; a grandchild that keeps the pipe
            // open must not hold the exit back forever.
            let _ = tokio::time::timeout(Duration::from_secs(1), out_task).await;
            let _ = tokio::time::timeout(Duration::from_millis(200), err_task).await;
            let event = match status {
                Ok(status) => exit_event(status),
                Err(e) => ChildEvent::Error(format!("waiting for the sidecar failed: {e}")),
            };
            let _ = tx.send(event).await;
        });

        Ok(Spawned {
            description: self.describe(),
            stdin: Box::new(TokioStdin(Some(stdin))),
            events: rx,
            control: Arc::new(TokioControl {
                pid,
                process_group: cfg!(unix) && self.process_group,
                kill_tx: Mutex::new(Some(kill_tx)),
            }),
        })
    }
}

impl Launcher for SidecarCommand {
    fn launch(&self) -> io::Result<Spawned> {
        self.spawn()
    }

    fn describe(&self) -> String {
        let mut s = self.program.to_string_lossy().into_owned();
        for a in &self.args {
            s.push(' ');
            s.push_str(&a.to_string_lossy());
        }
        s
    }
}

fn exit_event(status: std::process::ExitStatus) -> ChildEvent {
    #[cfg(unix)]
    let signal = std::os::unix::process::ExitStatusExt::signal(&status);
    #[cfg(not(unix))]
    let signal = None;
    ChildEvent::Exited { code: status.code(), signal }
}

async fn pump<R>(mut reader: R, tx: mpsc::Sender<ChildEvent>, wrap: fn(Vec<u8>) -> ChildEvent)
where
    R: tokio::io::AsyncRead + Unpin,
{
    let mut buf = vec![0u8; 16 * 1024];
    loop {
        match reader.read(&mut buf).await {
            Ok(0) => break,
            Ok(n) => {
                if tx.send(wrap(buf[..n].to_vec())).await.is_err() {
                    break;
                }
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => {
                let _ = tx.send(ChildEvent::Error(format!("reading the sidecar's output: {e}"))).await;
                break;
            }
        }
    }
}

struct TokioStdin(Option<tokio::process::ChildStdin>);

impl StdinWriter for TokioStdin {
    fn write_all(&mut self, buf: Vec<u8>) -> BoxFuture<'_, io::Result<()>> {
        Box::pin(async move {
            let stdin = self
                .0
                .as_mut()
                .ok_or_else(|| io::Error::new(io::ErrorKind::BrokenPipe, "stdin is closed"))?;
            stdin.write_all(&buf).await?;
            stdin.flush().await
        })
    }

    fn close(&mut self) {
        self.0 = None;
    }
}

struct TokioControl {
    pid: Option<u32>,
    process_group: bool,
    kill_tx: Mutex<Option<tokio::sync::oneshot::Sender<()>>>,
}

impl ProcessControl for TokioControl {
    fn pid(&self) -> Option<u32> {
        self.pid
    }

    fn kill_tree(&self) -> io::Result<()> {
        #[cfg(unix)]
        if self.process_group {
            if let Some(pid) = self.pid {
                kill_process_group(pid)?;
            }
        }
        if let Some(tx) = self.kill_tx.lock().unwrap_or_else(|e| e.into_inner()).take() {
            let _ = tx.send(());
        }
        Ok(())
    }
}

/// SIGKILL to the process group `pgid` (a child spawned as its own group leader).  A group
/// that is already gone is not an error.  Never signals group 0 or 1, or our own group.
#[cfg(unix)]
pub fn kill_process_group(pgid: u32) -> io::Result<()> {
    let pgid = pgid as libc::pid_t;
    // SAFETY: getpgrp and killpg take plain integers and have no memory effects.
    let own = unsafe { libc::getpgrp() };
    if pgid <= 1 || pgid == own {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("refusing to kill process group {pgid}"),
        ));
    }
    if unsafe { libc::killpg(pgid, libc::SIGKILL) } != 0 {
        let err = io::Error::last_os_error();
        if err.raw_os_error() != Some(libc::ESRCH) {
            return Err(err);
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn command_line_and_wrapping() {
        let c = SidecarCommand::from_command_line("  uv run --project /r mobile-worship-sidecar ").unwrap();
        assert_eq!(c.describe(), "uv run --project /r mobile-worship-sidecar");
        let w = c.wrapped(["ip", "netns", "exec", "ns1"]);
        assert_eq!(w.describe(), "ip netns exec ns1 uv run --project /r mobile-worship-sidecar");
        assert!(SidecarCommand::from_command_line("   ").is_none());
    }

    #[test]
    fn exit_info_display() {
        let e = ExitInfo { code: None, signal: Some(9), expected: false, stderr_tail: vec![] };
        assert_eq!(e.to_string(), "sidecar exited, killed by signal 9");
        let e = ExitInfo { code: Some(1), signal: None, expected: false, stderr_tail: vec!["boom".into()] };
        assert_eq!(e.to_string(), "sidecar exited with code 1; last stderr line: boom");
    }
}
