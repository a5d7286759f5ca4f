//! Against small fake children (python3 scripts) that misbehave the ways the real sidecar
//! never does: garbage on stdout, odd chunking, answers out of order or never, ignoring EOF.

mod common;

use std::time::{Duration, Instant};

use serde_json::{json, Value};
use sidecar_client::{Client, ClientConfig, Error, Notification, SidecarEvent};

use common::{eventually, fake_child, process_exists, LogCapture};

fn start(script: &str, config: ClientConfig) -> Client {
    Client::spawn(&fake_child(script), config).expect("spawn python3")
}

/// Answers every request with {"echo": method, "params": params}, writing each answer in
/// small pieces with `\r\n`, after printing garbage, a non-object and a notification.
const CHATTY: &str = r#"
import sys, json, time
out = sys.stdout.buffer
def send(raw):
    for i in range(0, len(raw), 7):
        out.write(raw[i:i+7]); out.flush(); time.sleep(0.001)
send(b"this is not json {\r\n")
send(b"42\n")
send(b'{"jsonrpc":"2.0","method":"webrtc:leader_changed","params":{"leader_id":null,"is_leader":false,"term":7}}\r\n')
for line in sys.stdin.buffer:
    req = json.loads(line)
    if "id" in req:
        ans = {"jsonrpc": "2.0", "id": req["id"], "result": {"echo": req["method"], "params": req.get("params")}}
        send(json.dumps(ans).encode() + b"\r\n")
"#;

#[tokio::test]
async fn a_malformed_line_is_logged_and_skipped() {
    let logs = LogCapture::default();
    let _guard = logs.install();
    let c = start(CHATTY, ClientConfig::default());
    let mut notes = c.subscribe();
    let note = tokio::time::timeout(Duration::from_secs(10), notes.recv()).await.unwrap().unwrap();
    assert!(matches!(note, Notification::LeaderChanged(ref p) if p.term == 7), "{note:?}");
    let v: Value = c.call("hello", json!({"a": "b\nc"})).await.unwrap();
    assert_eq!(v, json!({"echo": "hello", "params": {"a": "b\nc"}}));
    assert_eq!(c.malformed_lines(), 2, "the garbage line and the bare 42");
    let text = logs.text();
    assert!(text.contains("skipped a malformed line") && text.contains("this is not json"), "{text}");
    let info = c.shutdown().await;
    assert_eq!(info.code, Some(0));
}

#[tokio::test]
async fn answers_out_of_order_reach_their_callers() {
    // Reads three requests, answers them last-first.
    let script = r#"
import sys, json
reqs = [json.loads(sys.stdin.readline()) for _ in range(3)]
for r in reversed(reqs):
    print(json.dumps({"jsonrpc": "2.0", "id": r["id"], "result": r["params"]["n"]}), flush=True)
sys.stdin.read()
"#;
    let c = start(script, ClientConfig::default());
    let calls: Vec<_> = (0..3u64)
        .map(|n| {
            let c = c.clone();
            tokio::spawn(async move { c.call::<u64>("n", json!({"n": n})).await.unwrap() })
        })
        .collect();
    let mut got = Vec::new();
    for h in calls {
        got.push(h.await.unwrap());
    }
    assert_eq!(got, [0, 1, 2]);
    c.shutdown().await;
}

#[tokio::test]
async fn a_call_times_out_and_the_connection_carries_on() {
    // Never answers "hang"; answers anything else.
    let script = r#"
import sys, json
for line in sys.stdin:
    r = json.loads(line)
    if r["method"] != "hang":
        print(json.dumps({"jsonrpc": "2.0", "id": r["id"], "result": "ok"}), flush=True)
"#;
    let c = start(script, ClientConfig::default());
    let err =
        c.call_with_timeout::<Value>("hang", Value::Null, Duration::from_millis(200)).await.unwrap_err();
    assert!(matches!(err, Error::Timeout { ref method, .. } if method == "hang"), "{err:?}");
    assert_eq!(c.call::<String>("other", Value::Null).await.unwrap(), "ok");
    c.shutdown().await;
}

#[tokio::test]
async fn a_child_that_dies_fails_pending_calls_with_its_exit() {
    let script = r#"
import sys
sys.stdin.readline()
sys.stderr.write("boom: something broke\n")
sys.exit(3)
"#;
    let c = start(script, ClientConfig::default());
    let mut events = c.events();
    let err = c.call::<Value>("anything", Value::Null).await.unwrap_err();
    let Error::SidecarExited(exit) = &err else { panic!("{err:?}") };
    assert_eq!(exit.code, Some(3));
    assert_eq!(exit.stderr_tail, ["boom: something broke"]);
    assert_eq!(err.to_string(), "sidecar exited before answering: sidecar exited with code 3; last stderr line: boom: something broke");
    let event = tokio::time::timeout(Duration::from_secs(5), events.recv()).await.unwrap().unwrap();
    assert!(
        matches!(event, SidecarEvent::Exited { ref exit } if exit.code == Some(3) && !exit.expected),
        "{event:?}"
    );
}

#[tokio::test]
async fn shutdown_kills_the_process_tree_of_a_child_that_ignores_eof() {
    // Starts a grandchild, reports its pid, then ignores stdin EOF and SIGTERM.
    let script = r#"
import json, signal, subprocess, sys, time
signal.signal(signal.SIGTERM, signal.SIG_IGN)
g = subprocess.Popen(["sleep", "300"])
print(json.dumps({"jsonrpc": "2.0", "method": "grandchild", "params": {"pid": g.pid}}), flush=True)
sys.stdin.read()
while True:
    time.sleep(1)
"#;
    let config = ClientConfig { shutdown_grace: Duration::from_millis(500), ..ClientConfig::default() };
    let c = start(script, config);
    let mut notes = c.subscribe();
    let note = tokio::time::timeout(Duration::from_secs(10), notes.recv()).await.unwrap().unwrap();
    let Notification::Other { method, params } = note else { panic!("{note:?}") };
    assert_eq!(method, "grandchild");
    let grandchild = params["pid"].as_u64().unwrap() as u32;
    let child = c.pid().unwrap();
    assert!(process_exists(grandchild));
    let started = Instant::now();
    let info = c.shutdown().await;
    assert!(started.elapsed() < Duration::from_secs(3), "took {:?}", started.elapsed());
    assert_eq!(info.signal, Some(libc::SIGKILL), "{info:?}");
    assert!(info.expected);
    assert!(
        eventually(Duration::from_secs(2), || !process_exists(child) && !process_exists(grandchild)).await,
        "child {child} or grandchild {grandchild} survived"
    );
}
