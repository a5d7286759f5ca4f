//! Typed async JSON-RPC 2.0 client for the mobile-worship sidecar.
//!
//! The sidecar speaks newline-delimited JSON-RPC on its stdin/stdout (the contract is
//! `docs/api.md`).  This crate has no Tauri dependency:
//!
//! * [`Client`]: one running sidecar: concurrent calls, per-call timeout, notifications to
//!   subscribers, clean shutdown (close stdin, wait 3 s, kill the process tree).
//! * [`Supervisor`]: a [`Client`] that is started again with backoff when the sidecar dies.
//! * [`transport`]: what a child must offer ([`Spawned`]), so the same client runs over
//!   `tokio::process` ([`SidecarCommand`]) or over tauri-plugin-shell's `CommandChild`.
//! * [`types`]: the params, results and notifications of docs/api.md; [`Error`] maps JSON-RPC
//!   error codes to variants.
//!
//! ```no_run
//! # async fn demo() -> Result<(), sidecar_client::Error> {
//! use sidecar_client::{Client, ClientConfig, SidecarCommand};
//! let client = Client::spawn(&SidecarCommand::new("mobile-worship-sidecar"), ClientConfig::default())?;
//! let status = client.get_leader_status().await?;
//! println!("{:?}", status.state);
//! client.shutdown().await;
//! # Ok(()) }
//! ```

pub mod client;
pub mod error;
pub mod lines;
pub mod supervisor;
pub mod transport;
pub mod types;

pub use client::{Client, ClientConfig, SidecarEvent};
pub use error::{codes, Error, Result, RpcError};
pub use supervisor::{RestartPolicy, Supervisor, SupervisorConfig};
pub use transport::{ChildEvent, ExitInfo, Launcher, ProcessControl, SidecarCommand, Spawned, StdinWriter};
pub use types::*;
