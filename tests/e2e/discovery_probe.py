"""Run one `sidecar.net.discovery.Discovery` and narrate it as JSON lines (test helper).

Meant to run inside a test-lab host (mDNS must never run in the root network
namespace). Prints ``{"event": "ready", ...}`` once imported, then obeys JSON
commands on stdin, one per line:

* ``{"cmd": "start"}``: ``starting`` (time before the call), then ``started``
* ``{"cmd": "update", "fields": {"role": "leader", "term": 2}}``: ``updated``
  (``"leader_id": "self"`` stands for this peer's id)
* ``{"cmd": "announce"}``: ``announced``
* ``{"cmd": "known"}``: ``known`` with the peer ids of ``Discovery.known()``
* ``{"cmd": "close"}`` or EOF: ``closing``, then ``closed`` with the time close
  took and the asyncio tasks and threads still alive, then exit 0

and reports ``seen`` (with the record), ``gone`` and ``ignored`` (a record
dropped for its room, version or form, from the module's debug log). Every
event carries ``t``, ``time.monotonic()``, which is one clock for every process
on the machine whatever its network namespace.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import sys
import threading
import time
import uuid
from pathlib import Path
from typing import Any

_REPO = str(Path(__file__).resolve().parents[2])
if _REPO not in sys.path:
    sys.path.insert(0, _REPO)

import msgspec  # noqa: E402

from sidecar.contract import PeerRecord  # noqa: E402
from sidecar.core.netview import check_interfaces, usable  # noqa: E402
from sidecar.net import netifs  # noqa: E402
from sidecar.net.discovery import Discovery  # noqa: E402


def emit(event: str, **fields: Any) -> None:
    print(json.dumps({"event": event, "t": time.monotonic(), **fields}), flush=True)


class _IgnoredToEvents(logging.Handler):
    """Turns Discovery's "ignoring" debug records into `ignored` events."""

    def emit(self, record: logging.LogRecord) -> None:
        reason = getattr(record, "mdns_ignored", None)
        if reason is not None:
            emit("ignored", reason=reason, peer_id=getattr(record, "peer_id", None))


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--room", default="default")
    p.add_argument("--name", default="probe")
    p.add_argument("--peer-type", choices=["controller", "display"], default="display")
    p.add_argument("--display-class", default=None)
    p.add_argument("--peer-id", default=None)
    p.add_argument("--started-at", type=int, default=None)
    p.add_argument("--port", type=int, default=3010)
    p.add_argument("--interfaces", default=None, help="comma-separated; default: all up")
    p.add_argument("--log-level", default="DEBUG")
    p.add_argument("--zeroconf-debug", action="store_true", help="log every mDNS packet")
    return p.parse_args()


async def read_commands() -> asyncio.StreamReader:
    reader = asyncio.StreamReader()
    loop = asyncio.get_running_loop()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    return reader


async def main() -> int:
    args = parse_args()
    logging.basicConfig(
        level=args.log_level,
        stream=sys.stderr,
        format="%(relativeCreated)8.1f %(name)s %(levelname)s %(message)s",
    )
    logging.getLogger("sidecar.net.discovery").addHandler(_IgnoredToEvents())
    if args.zeroconf_debug:  # zeroconf pins its own logger to WARNING
        logging.getLogger("zeroconf").setLevel(logging.DEBUG)

    wanted = check_interfaces(args.interfaces.split(",")) if args.interfaces else None
    interfaces = list(usable(netifs.snapshot(), wanted))
    peer_id = args.peer_id or str(uuid.uuid4())
    me = PeerRecord(
        peer_id=peer_id,
        name=args.name,
        peer_type=args.peer_type,
        display_class=args.display_class if args.peer_type == "display" else None,
        started_at=args.started_at if args.started_at is not None else int(time.time() * 1000),
        role="candidate",
        leader_id=None,
        term=0,
        room=args.room,
        port=args.port,
    )
    if me.peer_type == "display" and me.display_class is None:
        me = msgspec.structs.replace(me, display_class="audience")

    discovery = Discovery(
        room=args.room,
        interfaces=interfaces,
        on_seen=lambda r: emit("seen", peer_id=r.peer_id, record=msgspec.to_builtins(r)),
        on_gone=lambda pid: emit("gone", peer_id=pid),
    )
    commands = await read_commands()
    emit("ready", peer_id=peer_id, interfaces=interfaces)

    try:
        while line := await commands.readline():
            if not line.strip():
                continue
            cmd = json.loads(line)
            match cmd["cmd"]:
                case "start":
                    emit("starting")
                    started = time.monotonic()
                    await discovery.start(me)
                    emit("started", start_s=time.monotonic() - started)
                case "update":
                    fields = dict(cmd.get("fields", {}))
                    if fields.get("leader_id") == "self":
                        fields["leader_id"] = peer_id
                    me = msgspec.structs.replace(me, **fields)
                    await discovery.update(me)
                    emit("updated", record=msgspec.to_builtins(me))
                case "announce":
                    discovery.announce()
                    emit("announced")
                case "known":
                    emit("known", peers=sorted(discovery.known()))
                case "close":
                    break
                case other:
                    emit("error", message=f"unknown command {other!r}")
    finally:
        emit("closing")
        started = time.monotonic()
        await discovery.close()
        close_s = time.monotonic() - started
        me_task = asyncio.current_task()
        tasks = [repr(t.get_coro()) for t in asyncio.all_tasks() if t is not me_task]
        threads = [t.name for t in threading.enumerate() if t is not threading.main_thread()]
        emit("closed", close_s=close_s, tasks=tasks, threads=threads)
    return 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
