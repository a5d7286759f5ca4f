"""zeroconf internals (see `sidecar.compat`): record classes, raw queries, and
closing without goodbyes or without waiting."""

from __future__ import annotations

import asyncio
import contextlib

from zeroconf import Zeroconf
from zeroconf._dns import (  # the classes are typed here
    DNSAddress,
    DNSPointer,
    DNSQuestion,
    DNSRecord,
    DNSService,
    DNSText,
)
from zeroconf._protocol.outgoing import DNSOutgoing
from zeroconf.const import _CLASS_IN, _FLAGS_QR_QUERY, _TYPE_PTR

__all__ = [
    "DNSAddress",
    "DNSPointer",
    "DNSRecord",
    "DNSService",
    "DNSText",
    "drop_registrations",
    "force_close",
    "ptr_query",
]


def ptr_query(service_type: str, unicast: bool = True) -> DNSOutgoing:
    """A query for every instance of `service_type` (QU: answered at once, unicast)."""
    question = DNSQuestion(service_type, _TYPE_PTR, _CLASS_IN)
    question.unicast = unicast
    query = DNSOutgoing(_FLAGS_QR_QUERY)
    query.add_question(question)
    return query


def drop_registrations(zc: Zeroconf) -> None:
    """Forget our registered services, so that closing sends no goodbye: the
    peer is still there, only moving to other sockets."""
    zc.registry.async_remove(zc.registry.async_get_service_infos())


def force_close(zc: Zeroconf) -> None:
    """Close sockets now, without goodbyes (from inside the loop, `close()`
    skips the blocking unregister and shuts the transports)."""
    with contextlib.suppress(Exception):
        zc.close()
    # Not cancelled by close(): it would reschedule itself forever.
    timer = getattr(zc.engine, "_cleanup_timer", None)
    if isinstance(timer, asyncio.TimerHandle):
        timer.cancel()
