"""JSON-RPC 2.0 over stdio, exactly as docs/api.md says.

`RpcServer.handle_line` takes one input line and returns the bytes of the
answer (or None): parse with msgspec, check the request envelope ourselves
(so each member of a batch gets its own precise error), then let jsonrpcserver
dispatch each request to the method table of `sidecar.host.methods`. Its jsonschema
pass is skipped: msgspec already validates params against their Structs.

Every cue crosses this code, so it calls jsonrpcserver's per-request
`call` directly: its public entry point wraps even a single request in
`asyncio.gather` (a task and two loop turns) and binds each call to the
method's signature (vacuous here: the methods take *args/**kwargs and msgspec
checks the params), together ~70 µs of the ~100 µs a request cost here
(measured in-process; bench/bench_channels.py has the end-to-end effect).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Any, Protocol

import msgspec
from msgspec import Struct

from sidecar.compat.jsonrpc import (
    ERROR_METHOD_NOT_FOUND,
    NOCONTEXT,
    NODATA,
    NOID,
    Error,
    JsonRpcError,
    Success,
    call,
    create_request,
    to_response,
    to_serializable,
)
from sidecar.contract import ParamError, convert_params
from sidecar.host import errors
from sidecar.host.errors import ApiError
from sidecar.host.methods import METHODS, MethodSpec
from sidecar.host.service import Service
from sidecar.host.stdio import Oversize

log = logging.getLogger(__name__)


class WriteLine(Protocol):
    def __call__(self, data: bytes, *, soon: bool = False) -> None: ...


METHOD_TIMEOUT_S = 30.0
"""No request may hang its caller forever."""


def _error(code: int, reason: str | None, id_: Any = None) -> dict[str, Any]:
    err: dict[str, Any] = {"code": code, "message": errors.ERROR_MESSAGES[code]}
    if reason is not None:
        err["data"] = {"reason": reason}
    return {"jsonrpc": "2.0", "error": err, "id": id_}


def _valid_id(value: Any) -> bool:
    return (
        value is None
        or isinstance(value, str)
        or (isinstance(value, int) and not isinstance(value, bool))
    )


def _envelope_problem(entry: Any) -> str | None:
    """Why `entry` is not a JSON-RPC 2.0 request object, or None when it is."""
    if not isinstance(entry, dict):
        return "a request must be a JSON object"
    if entry.get("jsonrpc") != "2.0":
        return 'member "jsonrpc" must be exactly "2.0"'
    if not isinstance(entry.get("method"), str):
        return 'member "method" must be a string'
    if "params" in entry and not isinstance(entry["params"], dict | list):
        return 'member "params" must be an object or an array'
    if "id" in entry and not _valid_id(entry["id"]):
        return 'member "id" must be a string, an integer or null'
    return None


def _bind(spec: MethodSpec, service: Service) -> Callable[..., Any]:
    """Adapt a MethodSpec to jsonrpcserver's calling convention."""

    async def method(*args: Any, **kwargs: Any) -> Any:
        try:
            params = convert_params(list(args) if args else kwargs, spec.params)
            if spec.bounded_inside:
                result = await spec.call(service, params)
            else:
                # asyncio.timeout runs the call inline (wait_for would add a task).
                async with asyncio.timeout(METHOD_TIMEOUT_S):
                    result = await spec.call(service, params)
        except ParamError as exc:
            raise JsonRpcError(errors.INVALID_PARAMS, "Invalid params", exc.as_data()) from None
        except ApiError as exc:
            data = NODATA if exc.data is None else exc.data
            raise JsonRpcError(exc.code, exc.message, data) from None
        except TimeoutError:
            log.error("%s timed out after %.0f s", spec.name, METHOD_TIMEOUT_S)
            raise JsonRpcError(
                errors.INTERNAL_ERROR,
                "Internal error",
                {"reason": f"{spec.name} timed out after {METHOD_TIMEOUT_S:.0f} s"},
            ) from None
        return Success(result)

    return method


class RpcServer:
    def __init__(
        self,
        service: Service,
        write_line: WriteLine,
        methods: tuple[MethodSpec, ...] = METHODS,
    ) -> None:
        self._write_line = write_line
        self._methods = {spec.name: _bind(spec, service) for spec in methods}
        self._encoder = msgspec.json.Encoder()

    def notify(self, method: str, params: Struct, *, soon: bool = False) -> None:
        """Send a notification to the host (never blocks); `soon`: see StdoutWriter."""
        self._write_line(
            self._encoder.encode({"jsonrpc": "2.0", "method": method, "params": params}),
            soon=soon,
        )

    async def handle_line(self, line: bytes | Oversize) -> None:
        """Answer one input line; writes nothing for notifications and blank lines.

        The answer is written `soon`: after the work the request scheduled on
        the loop (aiortc sends from a task) has started."""
        answer = await self.answer(line)
        if answer is not None:
            self._write_line(self._encoder.encode(answer), soon=True)

    async def answer(self, line: bytes | Oversize) -> Any:
        if isinstance(line, Oversize):
            return _error(errors.INVALID_REQUEST, f"line of {line.length} bytes exceeds the limit")
        if not line.strip():
            return None  # a person pressing Enter is not an error
        try:
            decoded = msgspec.json.decode(line)
        except (msgspec.DecodeError, msgspec.ValidationError, UnicodeDecodeError) as exc:
            return _error(errors.PARSE_ERROR, str(exc))
        except RecursionError:
            return _error(errors.PARSE_ERROR, "JSON nested too deeply")
        if isinstance(decoded, list):
            if not decoded:
                return _error(errors.INVALID_REQUEST, "empty batch")
            # One after another, in order: a send in a batch must not be
            # overtaken by a request read after it (JSON-RPC allows any order).
            answers = [await self._answer_one(e) for e in decoded]
            return [a for a in answers if a is not None] or None
        return await self._answer_one(decoded)

    async def _answer_one(self, entry: Any) -> Any:
        problem = _envelope_problem(entry)
        if problem is not None:
            id_ = entry.get("id") if isinstance(entry, dict) else None
            return _error(errors.INVALID_REQUEST, problem, id_ if _valid_id(id_) else None)
        request = create_request(entry)
        method = self._methods.get(request.method)
        try:
            if method is None:
                result = Error(ERROR_METHOD_NOT_FOUND, "Method not found", request.method)
            else:
                result = await call(request, NOCONTEXT, method)
        except Exception as exc:  # a bug of ours: still answer, and say so in the log
            log.exception("dispatching %s failed", request.method)
            return _error(errors.INTERNAL_ERROR, str(exc), entry.get("id"))
        if request.id is NOID:  # a notification: no answer
            return None
        return to_serializable(to_response(request, result))
