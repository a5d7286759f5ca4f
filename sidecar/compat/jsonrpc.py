"""jsonrpcserver, imported without the two parts of it the sidecar does not use.

Importing the package imports its default request validator (jsonschema, with
referencing, rpds and attrs) and its HTTP server (http.server): together ~90 ms of
the ~300 ms before a sidecar's first answer (`python -X importtime`, this
machine; BENCHMARKS.md, "A lean sidecar"). The sidecar validates each request
itself (sidecar.host.rpc: a reason per batch member) and calls jsonrpcserver's
per-request dispatch, and it serves stdio, not HTTP. So while jsonrpcserver is
imported, stand-ins answer for `jsonschema`, `jsonschema.validators` and
`http.server`, and are forgotten right after: anything else in the process that
imports them gets the real modules. jsonrpcserver's own `dispatch*` functions
and `serve` then refuse to run (tests/unit/test_compat.py checks both sides).
The sidecar imports jsonrpcserver from here only.
"""

from __future__ import annotations

import sys
from typing import Any

from sidecar.compat.standins import StandIns, refusing_class

NOT_HERE = "jsonrpcserver's own validation and HTTP server are not loaded in the sidecar"


def _validator_for(_module: str, _name: str) -> Any:
    class Validator:
        @classmethod
        def check_schema(cls, _schema: Any) -> None:
            return None

        def __init__(self, _schema: Any) -> None:
            return None

        def validate(self, _instance: Any) -> None:
            raise RuntimeError(NOT_HERE)

    def validator_for(_schema: Any) -> type[Validator]:
        return Validator

    return validator_for


_FINDER = StandIns(
    {
        "jsonschema": {},
        "jsonschema.validators": {"validator_for": _validator_for},
        "http.server": {
            "BaseHTTPRequestHandler": refusing_class(NOT_HERE),
            "HTTPServer": refusing_class(NOT_HERE),
        },
    },
    packages=frozenset({"jsonschema"}),
)


def _load() -> None:
    if "jsonrpcserver" in sys.modules:
        return
    with _FINDER.during():
        import jsonrpcserver  # noqa: F401


_load()

from jsonrpcserver import Error, JsonRpcError, Success  # noqa: E402
from jsonrpcserver.async_dispatcher import call  # noqa: E402
from jsonrpcserver.codes import ERROR_METHOD_NOT_FOUND  # noqa: E402
from jsonrpcserver.dispatcher import create_request, to_response  # noqa: E402
from jsonrpcserver.response import to_serializable  # noqa: E402
from jsonrpcserver.sentinels import NOCONTEXT, NODATA, NOID  # noqa: E402

__all__ = [
    "ERROR_METHOD_NOT_FOUND",
    "NOCONTEXT",
    "NODATA",
    "NOID",
    "Error",
    "JsonRpcError",
    "Success",
    "call",
    "create_request",
    "to_response",
    "to_serializable",
]
