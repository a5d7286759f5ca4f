"""JSON Schema and OpenRPC documents, generated from the Structs of `messages`.

`mobile-worship-sidecar schema` prints the first, `... openrpc` the second;
docs/openrpc.json is the committed copy (tests fail when it is stale).
"""

from __future__ import annotations

from typing import Any

import msgspec

from sidecar import __version__
from sidecar import contract as messages
from sidecar.host.errors import ERROR_MESSAGES
from sidecar.host.methods import METHODS

# Named entry points of the schema, beyond what the Structs name themselves.
_ROOTS: dict[str, Any] = {
    "PeerInfo": messages.PeerInfo,
    "PeerType": messages.PeerType,
    "DisplayClass": messages.DisplayClass,
    "ConnectionState": messages.ConnectionState,
    "LeaderState": messages.LeaderState,
    "MeshPolicy": messages.MeshPolicy,
    "DisconnectReason": messages.DisconnectReason,
    **{spec.params.__name__: spec.params for spec in METHODS},
    **{f"{spec.name}_result": spec.result if spec.result is not None else None for spec in METHODS},
    **{params.__name__: params for params in messages.NOTIFICATIONS.values()},
    "SignalMessage": messages.SignalMessage,
    "Envelope": messages.Envelope,
}


def _components(ref_template: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """(schema of each root by name, shared component schemas)."""
    names = list(_ROOTS)
    schemas, components = msgspec.json.schema_components(
        [_ROOTS[n] for n in names], ref_template=ref_template
    )
    return dict(zip(names, schemas, strict=True)), components


def json_schema() -> dict[str, Any]:
    roots, components = _components("#/$defs/{name}")
    defs = dict(components)
    for name, schema in roots.items():
        if schema != {"$ref": f"#/$defs/{name}"}:
            defs.setdefault(name, schema)
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": "urn:mobile-worship:sidecar:schema",
        "title": "mobile-worship sidecar messages",
        "description": "Every type of the stdio API (docs/api.md), the signaling protocol and "
        "the data-channel envelope. Generated from sidecar/contract/.",
        "$defs": dict(sorted(defs.items())),
    }


def _content_descriptors(params_schema: dict[str, Any]) -> list[dict[str, Any]]:
    required = set(params_schema.get("required", []))
    return [
        {"name": name, "required": name in required, "schema": schema}
        for name, schema in params_schema.get("properties", {}).items()
    ]


def openrpc_document() -> dict[str, Any]:
    roots, components = _components("#/components/schemas/{name}")
    methods = []
    for spec in METHODS:
        params_schema = components[spec.params.__name__]
        methods.append(
            {
                "name": spec.name,
                "summary": spec.summary,
                "paramStructure": "by-name",
                "params": _content_descriptors(params_schema),
                "x-params-schema": {"$ref": f"#/components/schemas/{spec.params.__name__}"},
                "result": {"name": f"{spec.name}_result", "schema": roots[f"{spec.name}_result"]},
                "errors": [{"code": c, "message": ERROR_MESSAGES[c]} for c in spec.errors],
            }
        )
    notifications = [
        {"name": name, "params": {"$ref": f"#/components/schemas/{params.__name__}"}}
        for name, params in messages.NOTIFICATIONS.items()
    ]
    return {
        "openrpc": "1.3.2",
        "info": {
            "title": "mobile-worship sidecar stdio API",
            "version": __version__,
            "description": "JSON-RPC 2.0 over stdin/stdout, one message per line. "
            "Generated from sidecar/host/methods.py and sidecar/contract/; see docs/api.md.",
        },
        "methods": methods,
        "components": {
            "schemas": dict(sorted(components.items())),
            "errors": {
                str(code): {"code": code, "message": message}
                for code, message in sorted(ERROR_MESSAGES.items())
            },
        },
        "x-notifications": notifications,
    }


def to_json(document: dict[str, Any]) -> str:
    """Stable, readable text form (the committed file is compared byte for byte)."""
    return msgspec.json.format(msgspec.json.encode(document), indent=2).decode() + "\n"
