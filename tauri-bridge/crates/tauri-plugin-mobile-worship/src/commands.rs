//! The plugin's commands: `invoke('plugin:mobile-worship|<method>', args)`.
//!
//! `args` are the JSON-RPC params of docs/api.md (snake_case), either by name
//! (`{payload, to}`) or under one `params` key (`{params: {payload, to}}`); both styles of
//! the `useWebRTC` hook work.  They go to the sidecar unchanged, which validates them
//! (errors name the field), and its result comes back unchanged.

use serde_json::{Map, Value};
use tauri::ipc::{InvokeBody, Request};
use tauri::{command, AppHandle, Runtime};

use crate::{Error, MobileWorshipExt, Result};

/// The params of a command call, in either style.
pub(crate) fn params_of(body: &InvokeBody) -> Result<Value> {
    let value = match body {
        InvokeBody::Json(v) => v.clone(),
        InvokeBody::Raw(bytes) if bytes.is_empty() => Value::Null,
        InvokeBody::Raw(bytes) => serde_json::from_slice(bytes)
            .map_err(|e| Error::InvalidArgs(format!("args are not JSON: {e}")))?,
    };
    Ok(match value {
        Value::Null => Value::Object(Map::new()),
        Value::Object(mut map) if map.len() == 1 && map.get("params").is_some_and(Value::is_object) => {
            map.remove("params").expect("checked above")
        }
        Value::Object(map) => Value::Object(map),
        other => return Err(Error::InvalidArgs(format!("args must be an object, got {other}"))),
    })
}

#[command]
pub(crate) async fn start_peer<R: Runtime>(app: AppHandle<R>, request: Request<'_>) -> Result<Value> {
    let params = params_of(request.body())?;
    app.mobile_worship().start_peer_json(params).await
}

#[command]
pub(crate) async fn send_control_message<R: Runtime>(
    app: AppHandle<R>,
    request: Request<'_>,
) -> Result<Value> {
    let params = params_of(request.body())?;
    app.mobile_worship().call_json("send_control_message", params).await
}

/// The room key an earlier run kept for `room` (default `default`), or null.
#[command]
pub(crate) async fn saved_room_key<R: Runtime>(app: AppHandle<R>, request: Request<'_>) -> Result<Value> {
    let room = crate::room_of(&params_of(request.body())?);
    Ok(app.mobile_worship().saved_room_key(&room).map_or(Value::Null, Value::String))
}

/// Forget the room key kept for `room` (default `default`).
#[command]
pub(crate) async fn forget_room_key<R: Runtime>(app: AppHandle<R>, request: Request<'_>) -> Result<Value> {
    let room = crate::room_of(&params_of(request.body())?);
    app.mobile_worship().forget_room_key(&room)?;
    Ok(Value::Null)
}

#[command]
pub(crate) async fn get_connected_peers<R: Runtime>(app: AppHandle<R>) -> Result<Value> {
    app.mobile_worship().call_json("get_connected_peers", Value::Null).await
}

#[command]
pub(crate) async fn get_leader_status<R: Runtime>(app: AppHandle<R>) -> Result<Value> {
    app.mobile_worship().call_json("get_leader_status", Value::Null).await
}

#[command]
pub(crate) async fn get_state<R: Runtime>(app: AppHandle<R>) -> Result<Value> {
    app.mobile_worship().call_json("get_state", Value::Null).await
}

#[command]
pub(crate) async fn open_pairing<R: Runtime>(app: AppHandle<R>, request: Request<'_>) -> Result<Value> {
    let params = params_of(request.body())?;
    app.mobile_worship().call_json("open_pairing", params).await
}

#[command]
pub(crate) async fn close_pairing<R: Runtime>(app: AppHandle<R>) -> Result<Value> {
    app.mobile_worship().call_json("close_pairing", Value::Null).await
}

#[command]
pub(crate) async fn rotate_room_key<R: Runtime>(app: AppHandle<R>, request: Request<'_>) -> Result<Value> {
    let params = params_of(request.body())?;
    app.mobile_worship().call_json("rotate_room_key", params).await
}

#[command]
pub(crate) async fn ping_peer<R: Runtime>(app: AppHandle<R>, request: Request<'_>) -> Result<Value> {
    let params = params_of(request.body())?;
    app.mobile_worship().call_json("ping_peer", params).await
}

#[command]
pub(crate) async fn stop_peer<R: Runtime>(app: AppHandle<R>) -> Result<Value> {
    app.mobile_worship().stop_peer().await?;
    Ok(Value::Null)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn both_arg_styles_give_the_same_params() {
        let flat = params_of(&InvokeBody::Json(json!({"payload": {"a": 1}, "to": "p"}))).unwrap();
        let wrapped =
            params_of(&InvokeBody::Json(json!({"params": {"payload": {"a": 1}, "to": "p"}}))).unwrap();
        assert_eq!(flat, wrapped);
        assert_eq!(flat, json!({"payload": {"a": 1}, "to": "p"}));
        // `params` that is not an object is an ordinary field (the sidecar will refuse it)
        assert_eq!(params_of(&InvokeBody::Json(json!({"params": 1}))).unwrap(), json!({"params": 1}));
        assert_eq!(params_of(&InvokeBody::Json(Value::Null)).unwrap(), json!({}));
        assert_eq!(
            params_of(&InvokeBody::Raw(br#"{"peer_id":"x"}"#.to_vec())).unwrap(),
            json!({"peer_id": "x"})
        );
        let err = params_of(&InvokeBody::Json(json!([1]))).unwrap_err();
        assert_eq!(err.kind(), "invalid_params");
    }
}
