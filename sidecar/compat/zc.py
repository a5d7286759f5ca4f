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
    "purge_instances",
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


def purge_instances(zc: Zeroconf, service_type: str, keep: set[str]) -> int:
    """Drop from zeroconf's cache every record of an instance of `service_type`
    whose label (the part before the type, lower case) is not in `keep`: its
    PTR, SRV and TXT, and the A records of `<label>.local.`. Returns how many.

    zeroconf bounds its cache (10 000 records), but a flood of forged instances
    fills it with records nobody uses; the peer keeps only the ones it knows."""
    cache = zc.cache
    suffix = "." + service_type.lower()
    dropped: list[DNSRecord] = []
    for record in cache.async_entries_with_name(service_type):
        if isinstance(record, DNSPointer):
            alias = record.alias.lower()
            if alias.endswith(suffix) and alias[: -len(suffix)] not in keep:
                dropped.append(record)
    for name in list(cache.cache):
        if name.endswith(suffix):
            label = name[: -len(suffix)]
        elif name.endswith(".local.") and name.count(".") == 2:
            label = name[: -len(".local.")]
        else:
            continue
        if label not in keep:
            dropped.extend(cache.async_entries_with_name(name))
    cache.async_remove_records(dropped)
    return len(dropped)
