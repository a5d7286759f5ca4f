//! Against the real sidecar process, in the root network namespace: so only methods that do
//! not touch the network (never `start_peer`; see two_bridges.rs for that).

mod common;

use std::time::{Duration, Instant};

use serde_json::{json, Value};
use sidecar_client::{
    Client, ClientConfig, Error, LeaderState, RestartPolicy, SendControlMessageParams, SidecarEvent,
    Supervisor, SupervisorConfig,
};

use common::{eventually, process_exists, sidecar_command};

fn client() -> Client {
    Client::spawn(&sidecar_command(), ClientConfig::default()).expect("spawn the sidecar")
}

#[tokio::test]
async fn get_leader_status_round_trip() {
    let c = client();
    let status = c.get_leader_status().await.unwrap();
    assert_eq!(status.state, LeaderState::Idle);
    assert_eq!(status.term, 0);
    assert!(!status.is_leader);
    assert_eq!(status.leader, None);
    assert_eq!(status.leader_id, None);
    assert_eq!(c.get_connected_peers().await.unwrap(), vec![]);
    let info = c.shutdown().await;
    assert_eq!(info.code, Some(0), "{info:?}");
}

#[tokio::test]
async fn concurrent_calls_each_get_their_own_answer() {
    let c = client();
    let mut set = tokio::task::JoinSet::new();
    for i in 0..60u32 {
        let c = c.clone();
        set.spawn(async move {
            match i % 4 {
                0 => c.get_leader_status().await.map(|s| json!(s.term)),
                1 => c.get_connected_peers().await.map(|p| json!(p.len())),
                2 => c.ping_peer(&format!("peer-{i}")).await.map(|r| json!(r.rtt_ms)),
                _ => c
                    .send_control_message(&SendControlMessageParams::broadcast(json!({"i": i})))
                    .await
                    .map(|r| json!(r.sent_to)),
            }
            .map_err(|e| e.kind().to_owned())
            .map(|v| (i, v))
            .map_err(|k| (i, k))
        });
    }
    let mut seen = 0;
    while let Some(joined) = set.join_next().await {
        seen += 1;
        match joined.unwrap() {
            Ok((i, v)) if i % 4 == 0 => assert_eq!(v, json!(0)),
            Ok((i, v)) if i % 4 == 1 => assert_eq!(v, json!(0)),
            // not started: ping and send are refused with -32001
            Err((i, kind)) if i % 4 >= 2 => assert_eq!(kind, "not_started", "call {i}"),
            other => panic!("unexpected outcome {other:?}"),
        }
    }
    assert_eq!(seen, 60);
    c.shutdown().await;
}

#[tokio::test]
async fn json_rpc_errors_map_to_their_variants() {
    let c = client();
    // -32602 with data naming the field
    let err = c.call::<Value>("ping_peer", json!({})).await.unwrap_err();
    let Error::InvalidParams(rpc) = &err else { panic!("expected InvalidParams, got {err:?}") };
    assert_eq!(rpc.code, -32602);
    assert_eq!(rpc.field(), Some("peer_id"), "{rpc:?}");
    assert!(rpc.reason().is_some());
    let err = c.call::<Value>("send_control_message", json!({"to": "x"})).await.unwrap_err();
    assert!(matches!(&err, Error::InvalidParams(rpc) if rpc.field() == Some("payload")), "{err:?}");
    // -32001
    let err = c.send_control_message(&SendControlMessageParams::to("someone", json!(1))).await.unwrap_err();
    assert!(matches!(err, Error::NotStarted(_)), "{err:?}");
    // -32601
    let err = c.call::<Value>("no_such_method", Value::Null).await.unwrap_err();
    assert!(matches!(err, Error::MethodNotFound(_)), "{err:?}");
    // a result of the wrong type is a decode error, and the connection carries on
    let err = c.call::<u32>("get_leader_status", Value::Null).await.unwrap_err();
    assert!(matches!(err, Error::Decode { .. }), "{err:?}");
    c.stop_peer().await.unwrap();
    assert_eq!(c.get_leader_status().await.unwrap().state, LeaderState::Idle);
    c.shutdown().await;
}

#[tokio::test]
async fn killed_sidecar_fails_pending_calls_and_reports_it() {
    let c = client();
    let mut events = c.events();
    c.get_leader_status().await.unwrap(); // up and answering
    let pid = c.pid().unwrap();
    // Freeze it so the calls below stay pending, then kill it.
    assert_eq!(unsafe { libc::kill(pid as i32, libc::SIGSTOP) }, 0);
    let calls: Vec<_> = (0..5)
        .map(|_| {
            let c = c.clone();
            tokio::spawn(async move { c.get_leader_status().await })
        })
        .collect();
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(calls.iter().all(|h| !h.is_finished()), "calls should be pending while the sidecar is stopped");
    assert_eq!(unsafe { libc::kill(pid as i32, libc::SIGKILL) }, 0);
    for call in calls {
        let err = tokio::time::timeout(Duration::from_secs(5), call)
            .await
            .expect("pending call failed in time")
            .unwrap()
            .unwrap_err();
        let Error::SidecarExited(exit) = &err else { panic!("expected SidecarExited, got {err:?}") };
        assert_eq!(exit.signal, Some(libc::SIGKILL));
        assert!(!exit.expected);
        assert!(err.to_string().contains("sidecar exited"), "{err}");
    }
    // reported as an event
    let exit = loop {
        match tokio::time::timeout(Duration::from_secs(5), events.recv()).await.unwrap().unwrap() {
            SidecarEvent::Exited { exit } => break exit,
            _ => continue,
        }
    };
    assert_eq!(exit.signal, Some(libc::SIGKILL));
    assert!(!c.is_alive());
    // new calls fail at once, with the same error
    let err = c.get_leader_status().await.unwrap_err();
    assert!(matches!(err, Error::SidecarExited(_)), "{err:?}");
    c.shutdown().await;
}

#[tokio::test]
async fn shutdown_closes_stdin_and_the_process_is_gone_within_3s() {
    let c = client();
    c.get_leader_status().await.unwrap();
    let pid = c.pid().unwrap();
    let started = Instant::now();
    let info = c.shutdown().await;
    let took = started.elapsed();
    assert_eq!(info.code, Some(0), "the sidecar exits 0 on EOF: {info:?}");
    assert!(info.expected);
    assert!(took < Duration::from_secs(3), "took {took:?}");
    assert!(eventually(Duration::from_millis(500), || !process_exists(pid)).await, "pid {pid} still exists");
    assert!(matches!(c.get_leader_status().await.unwrap_err(), Error::Closed | Error::SidecarExited(_)));
    // idempotent
    assert_eq!(c.shutdown().await.code, Some(0));
}

#[tokio::test]
async fn supervisor_restarts_a_killed_sidecar() {
    let config = SupervisorConfig {
        restart: Some(RestartPolicy {
            initial_backoff: Duration::from_millis(50),
            ..RestartPolicy::default()
        }),
        ..SupervisorConfig::default()
    };
    let sup = Supervisor::start(sidecar_command(), config).unwrap();
    let mut events = sup.events();
    sup.get_leader_status().await.unwrap();
    let first = sup.pid().unwrap();
    sup.client().unwrap().kill();
    let mut seen = Vec::new();
    let restarted = tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            let e = events.recv().await.unwrap();
            seen.push(e.clone());
            if let SidecarEvent::Started { pid, restart: 1 } = e {
                break pid;
            }
        }
    })
    .await
    .expect("restarted in time");
    assert!(matches!(seen[0], SidecarEvent::Exited { .. }), "{seen:?}");
    assert!(seen.iter().any(|e| matches!(e, SidecarEvent::Restarting { attempt: 1, .. })), "{seen:?}");
    assert_ne!(restarted, Some(first));
    assert_eq!(sup.get_leader_status().await.unwrap().state, LeaderState::Idle);
    assert_eq!(sup.restarts(), 1);
    let info = sup.shutdown().await.unwrap();
    assert_eq!(info.code, Some(0));
    assert!(matches!(sup.client().unwrap_err(), Error::Closed));
    assert!(!process_exists(first));
}
