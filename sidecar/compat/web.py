"""aiohttp internals (see `sidecar.compat`): a low-level server whose connections
are reported as they are accepted and closed, so the signaling server can
bound them before any HTTP is parsed (sidecar/core/admission.py)."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any, Protocol

from aiohttp import web


class ConnectionWatcher(Protocol):
    def accepted(self, handler: web.RequestHandler, transport: asyncio.BaseTransport) -> None:
        """A TCP connection was accepted; abort `transport` to refuse it."""

    def gone(self, handler: web.RequestHandler) -> None:
        """The connection closed."""


def watched_server(
    handle: Callable[[web.BaseRequest], Awaitable[web.StreamResponse]],
    watcher: ConnectionWatcher,
    **kwargs: Any,
) -> web.Server:
    """A `web.Server` (for `web.ServerRunner`) whose connections `watcher` sees."""

    class Handler(web.RequestHandler):
        def connection_made(self, transport: asyncio.BaseTransport) -> None:
            super().connection_made(transport)
            watcher.accepted(self, transport)

        def connection_lost(self, exc: BaseException | None) -> None:
            watcher.gone(self)
            super().connection_lost(exc)

    class Server(web.Server):
        def __call__(self) -> web.RequestHandler:
            return Handler(self, loop=self._loop, **self._kwargs)

    return Server(handle, **kwargs)
