//! Two bridges, two sidecars: a message sent by one arrives as a notification at the other.
//!
//! Each sidecar runs in a network namespace of its own, on a private bridge that lives in a
//! third namespace (the same layout as the Python test lab, on 10.78.0.0/24 so the two never
//! collide).  Nothing is ever created in the root namespace; no host has a default route.
//! Needs Linux and root; elsewhere it prints why and passes.

mod common;

use std::time::Duration;

use serde_json::json;
use sidecar_client::{
    Client, ClientConfig, ConnectionState, DisplayClass, Notification, PeerType, SendControlMessageParams,
    StartPeerParams,
};
use tokio::sync::broadcast;

use common::sidecar_command;

#[cfg(target_os = "linux")]
mod lab {
    use std::process::Command;
    use std::sync::atomic::{AtomicU32, Ordering};
    use std::time::{Duration, Instant};

    use sidecar_client::SidecarCommand;

    const PREFIX: &str = "mwr";
    const SUBNET: &str = "10.78.0";
    static NEXT: AtomicU32 = AtomicU32::new(1);

    fn ip(args: &[&str]) -> Result<String, String> {
        let out = Command::new("ip")
            .args(args)
            .output()
            .map_err(|e| format!("`ip {}` could not run: {e}", args.join(" ")))?;
        if !out.status.success() {
            return Err(format!(
                "`ip {}` failed: {}",
                args.join(" "),
                String::from_utf8_lossy(&out.stderr).trim()
            ));
        }
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    }

    fn netns_list() -> Vec<String> {
        ip(&["netns", "list"])
            .unwrap_or_default()
            .lines()
            .filter_map(|l| l.split_whitespace().next().map(str::to_owned))
            .collect()
    }

    fn pids_in(ns: &str) -> Vec<i32> {
        ip(&["netns", "pids", ns])
            .unwrap_or_default()
            .split_whitespace()
            .filter_map(|p| p.parse().ok())
            .collect()
    }

    /// SIGKILL everything inside `namespaces`, wait for it, delete them (bridge last).
    fn remove(namespaces: &[String]) {
        let existing = netns_list();
        let namespaces: Vec<&String> = namespaces.iter().filter(|n| existing.contains(n)).collect();
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            let pids: Vec<i32> = namespaces.iter().flat_map(|ns| pids_in(ns)).collect();
            if pids.is_empty() || Instant::now() >= deadline {
                break;
            }
            for pid in pids {
                // SAFETY: plain syscall on a pid found inside our own lab namespace.
                unsafe { libc::kill(pid, libc::SIGKILL) };
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        for ns in namespaces.iter().rev() {
            if let Err(e) = ip(&["netns", "del", ns]) {
                eprintln!("lab cleanup: {e}");
            }
        }
    }

    /// Labs left by test processes that died without cleaning up (e.g. SIGKILLed).
    fn sweep_stale() {
        for ns in netns_list() {
            let Some(rest) = ns.strip_prefix(PREFIX) else { continue };
            let Some(pid) = rest.split('x').next().and_then(|p| p.parse::<i32>().ok()) else { continue };
            // SAFETY: signal 0 only checks for existence.
            if pid != std::process::id() as i32 && unsafe { libc::kill(pid, 0) } != 0 {
                remove(&[ns]);
            }
        }
    }

    /// Hosts `10.78.0.1`, `10.78.0.2`, ... on one private bridge.  Removed on drop, also when
    /// the test panics.
    pub struct Lab {
        bridge: String,
        hosts: Vec<String>,
    }

    impl Lab {
        /// A lab of `n` hosts, or why it cannot be built here.
        pub fn new(n: usize) -> Result<Self, String> {
            // SAFETY: geteuid has no preconditions.
            if unsafe { libc::geteuid() } != 0 {
                return Err("network namespaces need root".into());
            }
            if Command::new("ip").arg("-V").output().is_err() {
                return Err("iproute2 `ip` not found".into());
            }
            sweep_stale();
            let prefix = format!("{PREFIX}{}x{}", std::process::id(), NEXT.fetch_add(1, Ordering::Relaxed));
            let mut lab = Lab { bridge: format!("{prefix}br"), hosts: Vec::new() };
            let br = lab.bridge.clone();
            // The first command tells whether namespaces work here at all.
            ip(&["netns", "add", &br]).map_err(|e| format!("cannot create network namespaces: {e}"))?;
            let setup = || -> Result<(), String> {
                ip(&["-n", &br, "link", "set", "lo", "up"])?;
                ip(&["-n", &br, "link", "add", "br0", "type", "bridge", "mcast_snooping", "0"])?;
                ip(&["-n", &br, "link", "set", "br0", "addrgenmode", "none"])?;
                ip(&["-n", &br, "link", "set", "br0", "up"])?;
                Ok(())
            };
            setup()?;
            for i in 1..=n {
                lab.add_host(&prefix, i)?;
            }
            Ok(lab)
        }

        fn add_host(&mut self, prefix: &str, i: usize) -> Result<(), String> {
            let host = format!("{prefix}-h{i}");
            let port = format!("v{i}");
            let br = self.bridge.clone();
            ip(&["netns", "add", &host])?;
            self.hosts.push(host.clone());
            ip(&["-n", &host, "link", "set", "lo", "up"])?;
            // Made inside the bridge namespace, its peer moved straight into the host: no
            // interface ever appears in the root namespace.
            ip(&["-n", &br, "link", "add", &port, "type", "veth", "peer", "name", "eth0", "netns", &host])?;
            ip(&["-n", &br, "link", "set", &port, "addrgenmode", "none"])?;
            ip(&["-n", &br, "link", "set", &port, "master", "br0"])?;
            ip(&["-n", &br, "link", "set", &port, "up"])?;
            ip(&["-n", &host, "addr", "add", &format!("{SUBNET}.{i}/24"), "dev", "eth0"])?;
            ip(&["-n", &host, "link", "set", "eth0", "up"])?;
            ip(&["-n", &host, "route", "add", "224.0.0.0/4", "dev", "eth0"])?;
            for family in ["-4", "-6"] {
                let routes = ip(&["-n", &host, family, "route", "show", "default"])?;
                if !routes.trim().is_empty() {
                    return Err(format!("{host} unexpectedly has a default route: {routes}"));
                }
            }
            let deadline = Instant::now() + Duration::from_secs(5);
            while !ip(&["-n", &br, "-d", "link", "show", &port])?.contains("state forwarding") {
                if Instant::now() >= deadline {
                    return Err(format!("bridge port {port} not forwarding"));
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            Ok(())
        }

        /// `command` run inside host `i` (0-based) through `ip netns exec`, which execs: the
        /// pid is the command's own.
        pub fn command(&self, i: usize, command: SidecarCommand) -> SidecarCommand {
            command.wrapped(["ip", "netns", "exec", &self.hosts[i]])
        }

        pub fn host_ip(&self, i: usize) -> String {
            format!("{SUBNET}.{}", i + 1)
        }

        pub fn namespaces(&self) -> Vec<String> {
            let mut all = self.hosts.clone();
            all.push(self.bridge.clone());
            all
        }
    }

    impl Drop for Lab {
        fn drop(&mut self) {
            let all = self.namespaces();
            remove(&all);
            let left: Vec<String> = netns_list().into_iter().filter(|n| all.contains(n)).collect();
            if !left.is_empty() {
                eprintln!("lab cleanup left namespaces behind: {left:?}");
            }
        }
    }
}

async fn wait_for<T>(
    rx: &mut broadcast::Receiver<Notification>,
    within: Duration,
    what: &str,
    mut pick: impl FnMut(&Notification) -> Option<T>,
) -> T {
    let mut seen = Vec::new();
    let found = tokio::time::timeout(within, async {
        loop {
            match rx.recv().await {
                Ok(n) => {
                    if let Some(t) = pick(&n) {
                        return t;
                    }
                    seen.push(n.method().to_owned());
                }
                Err(broadcast::error::RecvError::Lagged(k)) => seen.push(format!("<lagged {k}>")),
                Err(broadcast::error::RecvError::Closed) => {
                    panic!("notification channel closed waiting for {what}")
                }
            }
        }
    })
    .await;
    match found {
        Ok(t) => t,
        Err(_) => panic!("no {what} within {within:?}; saw {seen:?}"),
    }
}

#[cfg(not(target_os = "linux"))]
#[tokio::test]
async fn two_bridges_two_sidecars_a_message_sent_by_one_arrives_at_the_other() {
    eprintln!("skipping: the network-namespace lab needs Linux");
}

#[cfg(target_os = "linux")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_bridges_two_sidecars_a_message_sent_by_one_arrives_at_the_other() {
    let lab = match lab::Lab::new(2) {
        Ok(lab) => lab,
        Err(reason) => {
            eprintln!("skipping two_bridges: {reason}");
            return;
        }
    };
    let config = ClientConfig::default();
    let a = Client::spawn(&lab.command(0, sidecar_command()), config.clone()).unwrap();
    let b = Client::spawn(&lab.command(1, sidecar_command()), config).unwrap();
    let mut notes_a = a.subscribe();
    let mut notes_b = b.subscribe();

    let (booth, stage) =
        (StartPeerParams::controller("Booth"), StartPeerParams::display("Stage", DisplayClass::Stage));
    let (pa, pb) = tokio::join!(a.start_peer(&booth), b.start_peer(&stage));
    let (pa, pb) = (pa.expect("start_peer in A"), pb.expect("start_peer in B"));
    assert_eq!(pa.peer_type, PeerType::Controller);
    assert_eq!(pb.display_class, Some(DisplayClass::Stage));
    assert_eq!(pa.connection_state, ConnectionState::SelfPeer);

    let within = Duration::from_secs(20);
    let (seen_by_a, seen_by_b) = tokio::join!(
        wait_for(&mut notes_a, within, "webrtc:connected at A", |n| match n {
            Notification::Connected(c) if c.peer.peer_id == pb.peer_id => Some(c.peer.clone()),
            _ => None,
        }),
        wait_for(&mut notes_b, within, "webrtc:connected at B", |n| match n {
            Notification::Connected(c) if c.peer.peer_id == pa.peer_id => Some(c.peer.clone()),
            _ => None,
        }),
    );
    assert_eq!(seen_by_a.name, "Stage");
    assert_eq!(seen_by_b.name, "Booth");
    assert_eq!(seen_by_a.connection_state, ConnectionState::Connected);

    let payload =
        json!({"cue": "Ἰησοῦς ✝ 𝄞", "slide": 3, "nested": [1, null, {"ok": true}], "from": lab.host_ip(0)});
    let sent = a
        .send_control_message(&SendControlMessageParams::to(pb.peer_id.clone(), payload.clone()))
        .await
        .unwrap();
    assert_eq!(sent.sent_to, [pb.peer_id.as_str()]);
    let received = wait_for(&mut notes_b, Duration::from_secs(10), "webrtc:message at B", |n| match n {
        Notification::Message(m) if m.message_id == sent.message_id => Some(m.clone()),
        _ => None,
    })
    .await;
    assert_eq!(received.payload, payload);
    assert_eq!(received.from, pa.peer_id);

    let connected = b.get_connected_peers().await.unwrap();
    assert_eq!(connected.iter().map(|p| p.peer_id.as_str()).collect::<Vec<_>>(), [pa.peer_id.as_str()]);

    let (ea, eb) = tokio::join!(a.shutdown(), b.shutdown());
    assert_eq!((ea.code, eb.code), (Some(0), Some(0)), "{ea:?} {eb:?}");
    drop(lab);
}
