//! The Rust types follow the contract: docs/openrpc.json, generated from the sidecar's
//! message definitions, is the one source.  For every type of the API, a value built from
//! its schema (every field filled) must deserialize into the Rust struct and serialize back
//! with the same fields; and the notification methods are exactly the schema's.

use std::collections::BTreeSet;
use std::path::Path;

use serde::de::DeserializeOwned;
use serde::Serialize;
use serde_json::{json, Map, Value};
use sidecar_client::types::methods;
use sidecar_client::{
    ConnectedParams, DisconnectedParams, IceServer, LeaderChangedParams, LeaderStatus, MessageParams,
    NetworkChangedParams, OpenPairingParams, PairedParams, PairingParams, PairingWindow, PeerInfo,
    PeerListChangedParams, PingPeerParams, PingResult, RendezvousStatus, RoomKeyParams, RotateRoomKeyParams,
    RotationResult, SendControlMessageParams, SendResult, StartPeerParams, StateEntry, StateVersion,
};

fn openrpc() -> Value {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../docs/openrpc.json");
    serde_json::from_str(&std::fs::read_to_string(&path).expect("docs/openrpc.json")).unwrap()
}

fn schema<'a>(doc: &'a Value, name: &str) -> &'a Value {
    &doc["components"]["schemas"][name]
}

/// A value of `s` with every field present (the first choice of every union and enum).
fn sample(doc: &Value, s: &Value) -> Value {
    if let Some(reference) = s.get("$ref").and_then(Value::as_str) {
        let name = reference.rsplit('/').next().unwrap();
        return sample(doc, schema(doc, name));
    }
    if let Some(choices) = s.get("anyOf").and_then(Value::as_array) {
        let first = choices.iter().find(|c| c.get("type") != Some(&json!("null"))).unwrap();
        return sample(doc, first);
    }
    if let Some(values) = s.get("enum").and_then(Value::as_array) {
        return values[0].clone();
    }
    match s.get("type").and_then(Value::as_str) {
        Some("object") => {
            let mut object = Map::new();
            for (field, field_schema) in s["properties"].as_object().unwrap() {
                object.insert(field.clone(), sample(doc, field_schema));
            }
            Value::Object(object)
        }
        Some("array") => json!([sample(doc, &s["items"])]),
        Some("string") => match s.get("pattern").and_then(Value::as_str) {
            Some(p) if p.contains("25[0-5]") => json!("10.0.0.1"),
            Some(p) if p.starts_with("^(stun") || p.contains("turn") => json!("turn:10.0.0.1"),
            _ => json!("x"),
        },
        Some("integer") => json!(1),
        Some("number") => json!(1.5),
        Some("boolean") => json!(true),
        None => json!({"any": [1, "json"]}), // a payload: any JSON value
        Some(other) => panic!("no sample for type {other}"),
    }
}

fn fields(v: &Value) -> BTreeSet<String> {
    v.as_object().map(|o| o.keys().cloned().collect()).unwrap_or_default()
}

fn round_trips<T: DeserializeOwned + Serialize>(doc: &Value, name: &str) {
    let s = schema(doc, name);
    assert!(s.is_object(), "{name} is not in docs/openrpc.json");
    let value = sample(doc, s);
    let typed: T = serde_json::from_value(value.clone())
        .unwrap_or_else(|e| panic!("{name}: the schema's value does not fit the Rust type: {e}\n{value}"));
    let back = serde_json::to_value(typed).unwrap();
    assert_eq!(fields(&back), fields(&value), "{name}: the Rust type's fields differ from the schema's");
}

/// Every type of the API as the schema names it, with the Rust type it maps to.
macro_rules! api_types {
    ($($name:ident),* $(,)?) => {
        const API_TYPES: &[(&str, fn(&Value, &str))] = &[$((stringify!($name), round_trips::<$name>)),*];
    };
}
api_types!(
    PeerInfo,
    LeaderStatus,
    RendezvousStatus,
    PairingWindow,
    OpenPairingParams,
    PairedParams,
    RoomKeyParams,
    RotateRoomKeyParams,
    RotationResult,
    PairingParams,
    IceServer,
    StartPeerParams,
    SendControlMessageParams,
    SendResult,
    PingPeerParams,
    PingResult,
    StateVersion,
    StateEntry,
    ConnectedParams,
    DisconnectedParams,
    MessageParams,
    LeaderChangedParams,
    PeerListChangedParams,
    NetworkChangedParams,
);

/// The object types the API uses, read from the schema itself: each method's params
/// (`x-params-schema`) and result, each notification's params, and every type they
/// reach. An object without fields (a method without params) has no Rust type.
fn api_type_names(doc: &Value) -> BTreeSet<String> {
    fn walk(doc: &Value, node: &Value, found: &mut BTreeSet<String>) {
        match node {
            Value::Object(map) => {
                if let Some(name) = map.get("$ref").and_then(Value::as_str).and_then(|r| r.rsplit('/').next())
                {
                    if found.insert(name.to_string()) {
                        walk(doc, schema(doc, name), found);
                    }
                }
                map.values().for_each(|v| walk(doc, v, found));
            }
            Value::Array(items) => items.iter().for_each(|v| walk(doc, v, found)),
            _ => {}
        }
    }
    let mut found = BTreeSet::new();
    walk(doc, &doc["methods"], &mut found);
    walk(doc, &doc["x-notifications"], &mut found);
    found
        .into_iter()
        .filter(|name| {
            let s = schema(doc, name);
            s["type"] == "object" && s["properties"].as_object().is_some_and(|p| !p.is_empty())
        })
        .collect()
}

#[test]
fn every_api_type_of_the_schema_has_a_rust_type() {
    let doc = openrpc();
    let ours: BTreeSet<String> = API_TYPES.iter().map(|(name, _)| (*name).to_string()).collect();
    assert_eq!(ours, api_type_names(&doc), "the schema's API types and the Rust types differ");
}

#[test]
fn every_api_type_has_the_schemas_fields() {
    let doc = openrpc();
    for (name, check) in API_TYPES {
        check(&doc, name);
    }
}

#[test]
fn the_notification_methods_are_the_schemas() {
    let doc = openrpc();
    let listed: BTreeSet<&str> =
        doc["x-notifications"].as_array().unwrap().iter().map(|n| n["name"].as_str().unwrap()).collect();
    assert_eq!(listed, methods::ALL.into_iter().collect::<BTreeSet<_>>());
}
