"""Error codes of the stdio API (docs/api.md, "Errors") as exceptions.

The peer raises these; `sidecar.host.rpc` turns them into JSON-RPC error objects.
Keeping them free of jsonrpcserver lets the core stay I/O- and library-free.
"""

from __future__ import annotations

from typing import Any

PARSE_ERROR = -32700
INVALID_REQUEST = -32600
METHOD_NOT_FOUND = -32601
INVALID_PARAMS = -32602
INTERNAL_ERROR = -32603
NOT_STARTED = -32001
ALREADY_STARTED = -32002
PEER_NOT_CONNECTED = -32003
PAYLOAD_TOO_LARGE = -32004
PAIRING_FAILED = -32005
NOT_KEYED = -32006


class ApiError(Exception):
    """An error answer: JSON-RPC `code`, human `message`, machine `data`."""

    code: int = INTERNAL_ERROR

    def __init__(self, message: str, data: Any = None) -> None:
        super().__init__(message)
        self.message = message
        self.data = data


class NotStarted(ApiError):
    code = NOT_STARTED

    def __init__(self, why: str = "call start_peer first") -> None:
        super().__init__(f"Peer not started: {why}")


class AlreadyStarted(ApiError):
    code = ALREADY_STARTED

    def __init__(self) -> None:
        super().__init__("Peer already started: call stop_peer first")


class PeerNotConnected(ApiError):
    code = PEER_NOT_CONNECTED

    def __init__(self, peer_ids: list[str], detail: str = "", **data: Any) -> None:
        super().__init__(
            f"Peer not connected: {', '.join(peer_ids)}{detail}", {"peer_ids": peer_ids, **data}
        )


class PayloadTooLarge(ApiError):
    code = PAYLOAD_TOO_LARGE

    def __init__(self, size: int, limit: int) -> None:
        super().__init__(
            f"Payload too large: {size} bytes serialized, limit {limit}",
            {"size": size, "limit": limit},
        )


class StateFull(ApiError):
    """A retained write beyond the room's bounds (sidecar/core/state.py)."""

    code = PAYLOAD_TOO_LARGE

    def __init__(self, why: str) -> None:
        super().__init__(f"Retained state full: {why}", {"field": "retain", "reason": why})


class PairingFailed(ApiError):
    """start_peer with a pairing code got no room key (wrong code, no window, timeout)."""

    code = PAIRING_FAILED

    def __init__(self, why: str) -> None:
        super().__init__(f"Pairing failed: {why}", {"reason": why})


class NotKeyed(ApiError):
    code = NOT_KEYED

    def __init__(self, why: str) -> None:
        super().__init__(f"Room has no key: {why}")


ERROR_MESSAGES: dict[int, str] = {
    PARSE_ERROR: "Parse error",
    INVALID_REQUEST: "Invalid request",
    METHOD_NOT_FOUND: "Method not found",
    INVALID_PARAMS: "Invalid params",
    INTERNAL_ERROR: "Internal error",
    NOT_STARTED: "Peer not started",
    ALREADY_STARTED: "Peer already started",
    PEER_NOT_CONNECTED: "Peer not connected",
    PAYLOAD_TOO_LARGE: "Payload too large",
    PAIRING_FAILED: "Pairing failed",
    NOT_KEYED: "Room has no key",
}
"""Every code the API can answer, for the OpenRPC document."""
