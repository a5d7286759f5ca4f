"""Trace vectors of the shared cores: tests/vectors/<core>/*.json, run here against
the Python cores and by frontend-hook/test/traces.test.ts against the TypeScript
ones. A trace lists inputs (with the time they happen) and, after each, the
exact outputs expected; both languages must produce them, in order.

    uv run python -m tests.traces record tests/vectors/link/<name>.json

fills in `out` (and `deadline`, `result`) from the Python core, for a trace
whose inputs were just written: read what it recorded before committing it.

Link traces (`LinkCore`, sidecar/core/link.py). `link`: {"offerer", "web_peer", "direct"};
this side is "a", the other "b", the channel "l1". Each step: `at` (ms), `in`
(one input: its name and arguments), `out` (outputs), and optionally `result`
(what the input returned), `deadline` (next_deadline() after it) and `check`
(observable state). Envelopes are JSON objects; `{"$pad": n}` anywhere stands
for a string of n "x" (so is such a string in recorded outputs). `text` gives
a message's raw text instead, `{"repeat": [s, n]}` s n times. The input
`connect` opens the channel as its side would: its outputs are those of the
inputs it stands for.

State traces (`RoomState`, sidecar/core/state.py): see `run_state`.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import msgspec

from sidecar.core import link as L
from sidecar.core.state import (
    Entry,
    RoomState,
    StateError,
    Version,
    chunks,
)

VECTORS = Path(__file__).resolve().parent / "vectors"
ME, PEER, LINK_ID = "a", "b", "l1"
PAD_MIN = 64


def traces(core: str) -> list[Path]:
    return sorted((VECTORS / core).glob("*.json"))


# ------------------------------------------------------------------ JSON helpers


def unpad(value: Any) -> Any:
    if isinstance(value, dict):
        if set(value) == {"$pad"}:
            return "x" * int(value["$pad"])
        return {k: unpad(v) for k, v in value.items()}
    if isinstance(value, list):
        return [unpad(v) for v in value]
    return value


def pad(value: Any) -> Any:
    if isinstance(value, str) and len(value) >= PAD_MIN and value == "x" * len(value):
        return {"$pad": len(value)}
    if isinstance(value, dict):
        return {k: pad(v) for k, v in value.items()}
    if isinstance(value, list):
        return [pad(v) for v in value]
    return value


def text_of(args: dict[str, Any]) -> str:
    """A message's text: `envelope` (compact JSON, keys in the order given),
    `text`, or `repeat`."""
    if "envelope" in args:
        return json.dumps(unpad(args["envelope"]), separators=(",", ":"), ensure_ascii=False)
    if "repeat" in args:
        piece, count = args["repeat"]
        return str(piece) * int(count)
    return str(args["text"])


# ------------------------------------------------------------------ link traces


def link_output(output: L.Output) -> dict[str, Any]:
    match output:
        case L.CreateOffer(epoch):
            return {"create_offer": epoch}
        case L.CreateAnswer(epoch, sdp):
            return {"create_answer": {"epoch": epoch, "sdp": sdp}}
        case L.AcceptAnswer(epoch, sdp):
            return {"accept_answer": {"epoch": epoch, "sdp": sdp}}
        case L.OpenRelay(epoch):
            return {"open_relay": epoch}
        case L.Send(epoch, text, must):
            return {"send": {"epoch": epoch, "envelope": pad(json.loads(text)), "must": must}}
        case L.Signal(kind, epoch, sdp):
            return {"signal": {"kind": kind, "epoch": epoch, "sdp": sdp}}
        case L.Close(epoch):
            return {"close": epoch}
        case L.Up():
            return {"up": {}}
        case L.Down(reason, unacked):
            return {"down": {"reason": reason, "unacked": unacked}}
        case L.Message(envelope):
            return {"message": pad(msgspec.to_builtins(envelope))}
        case L.Went(ticket):
            return {"went": ticket}
        case L.Dropped(ticket):
            return {"dropped": ticket}
        case L.Idle():
            return {"idle": {}}
        case L.Pong(seq, rtt_ms):
            return {"pong": {"seq": seq, "rtt_ms": rtt_ms}}
        case L.NoPong(seq):
            return {"no_pong": seq}
    raise AssertionError(f"unknown output {output!r}")


def _connect(core: L.LinkCore, now: float) -> None:
    sync0 = '{"type":"sync","received":0}'
    if core.offerer:
        core.offer(now)
        core.local_description(1, "offer-1", now)
        core.answer_received(1, "answer-1", now)
    else:
        core.offer_received(1, "offer-1", now)
        core.local_description(1, "answer-1", now)
    core.transport_open(1, now)
    core.transport_message(1, sync0, now)


def link_input(core: L.LinkCore, name: str, args: dict[str, Any], now: float) -> Any:
    """Feed one input; returns what it returned (None for most)."""
    match name:
        case "connect":
            _connect(core, now)
        case "offer":
            core.offer(now, bool(args.get("relay", False)))
        case "local_description":
            core.local_description(args["epoch"], args["sdp"], now)
        case "negotiation_failed":
            core.negotiation_failed(args["epoch"], now)
        case "route_changed":
            core.route_changed(now)
        case "offer_received":
            core.offer_received(args["epoch"], args["sdp"], now)
        case "answer_received":
            core.answer_received(args["epoch"], args["sdp"], now)
        case "relay_received":
            core.relay_received(args["epoch"], text_of(args), now)
        case "transport_open":
            core.transport_open(args["epoch"], now)
        case "transport_message":
            core.transport_message(args["epoch"], text_of(args), now)
        case "transport_binary":  # a binary message of `size` bytes (the channel is text)
            core.transport_message(args["epoch"], b"\0" * args["size"], now)
        case "transport_closed":
            core.transport_closed(args["epoch"], args["reason"], now)
        case "send_failed":
            core.send_failed(args["epoch"], now)
        case "send":
            try:
                return core.send(text_of(args), args.get("id", ""), now)
            except ConnectionError:
                return "not open"
        case "send_now":
            return core.send_now(text_of(args), now)
        case "cancel":
            core.cancel(args["ticket"])
        case "ping":
            try:
                return core.ping(now, args["timeout"])
            except ConnectionError:
                return "not open"
        case "path_changed":
            path = args.get("path")
            core.path_changed(
                now,
                set(args.get("lost_local", [])),
                None if args.get("remote_addresses") is None else set(args["remote_addresses"]),
                None if path is None else L.Path(path["local"], path["remote"], path["type"]),
            )
        case "set_host_busy":
            core.set_host_busy(args["busy"], now)
        case "close":
            core.close(args["say_bye"], now)
        case "tick":
            core.tick(now)
        case _:
            raise AssertionError(f"unknown input {name!r}")
    return None


def link_check(core: L.LinkCore) -> dict[str, Any]:
    return {
        "state": core.state,
        "epoch": core.epoch,
        "via": core.via,
        "migrating": core.migrating,
        "refused": core.refused,
        "unacked": core.unacked(),
    }


def run_link(trace: dict[str, Any], record: bool = False) -> dict[str, Any]:
    """Run a link trace; with `record`, fill in what the core did (else assert it)."""
    setup = trace["link"]
    core = L.LinkCore(
        me=ME,
        peer_id=PEER,
        link_id=LINK_ID,
        offerer=setup["offerer"],
        web_peer=setup.get("web_peer", False),
        now=float(setup.get("at", 0)),
        direct=setup.get("direct", True),
    )
    for n, step in enumerate(trace["steps"]):
        ((name, args),) = step["in"].items()
        now = float(step["at"])
        result = link_input(core, name, args or {}, now)
        got = [link_output(o) for o in core.take()]
        where = f"step {n} ({name} at {step['at']})"
        if record:
            step["out"] = got
            if result is not None:
                step["result"] = result
            if "deadline" in step:
                step["deadline"] = core.next_deadline()
            if "check" in step:
                step["check"] = {k: link_check(core)[k] for k in step["check"]}
            continue
        assert got == step["out"], f"{where}: outputs differ"
        assert result == step.get("result"), f"{where}: returned {result!r}"
        if "deadline" in step:
            assert core.next_deadline() == step["deadline"], f"{where}: next deadline"
        if "check" in step:
            state = link_check(core)
            assert {k: state[k] for k in step["check"]} == step["check"], f"{where}: state"
    return trace


# ----------------------------------------------------------------- state traces


def entry_of(wire: dict[str, Any]) -> Entry:
    from sidecar.contract import payload_size

    e = unpad(wire)  # not validated: the core's own checks are what a trace tests
    version = Version(e["version"]["time"], e["version"]["counter"], e["origin"])
    return Entry(e["key"], e["value"], version, payload_size(e["value"]))


def entry_json(entry: Entry) -> Any:
    return pad(
        {
            "key": entry.key,
            "value": entry.value,
            "origin": entry.version.origin,
            "version": {"time": entry.version.time, "counter": entry.version.counter},
        }
    )


def run_state(trace: dict[str, Any], record: bool = False) -> dict[str, Any]:
    """A state trace: `me`, then steps of `set` {key, value, now} (result: the
    entry, or {"error": reason}), `merge` {entry, now} (result: taken or not),
    `fill` {prefix, count, value, now} (sets prefix0, prefix1, ... at now, now
    + 1, ... until one is refused; result: how many were set),
    `chunks` {limit?} (result: the snapshot's keys per chunk), and optionally
    `current` (the keys with a value, in order, after the step) and `counts`
    ({values, tombstones, bytes})."""
    from sidecar.contract import payload_size

    state = RoomState(trace["me"])
    for n, step in enumerate(trace["steps"]):
        ((name, args),) = step["in"].items()
        where = f"step {n} ({name})"
        result: Any
        if name == "set":
            value = unpad(args["value"])
            try:
                result = entry_json(state.set(args["key"], value, payload_size(value), args["now"]))
            except StateError as exc:
                result = {"error": str(exc)}
        elif name == "merge":
            result = state.merge(entry_of(args["entry"]), args["now"])
        elif name == "fill":
            value = unpad(args.get("value"))
            size = payload_size(value)
            result = 0
            for i in range(args["count"]):
                try:
                    state.set(f"{args['prefix']}{i}", value, size, args["now"] + i)
                    result += 1
                except StateError:
                    break
        elif name == "chunks":
            limit = args.get("limit")
            groups = chunks(state.snapshot(), limit) if limit else chunks(state.snapshot())
            result = [[e.key for e in g] for g in groups]
        else:
            raise AssertionError(f"{where}: unknown input")
        current = [entry_json(e) for e in state.current()]
        counts = {"values": len(state), "tombstones": state.tombstones, "bytes": state.size}
        if record:
            step["result"] = result
            if "current" in step:
                step["current"] = current
            if "counts" in step:
                step["counts"] = counts
            continue
        assert result == step["result"], f"{where}: result"
        if "current" in step:
            assert current == step["current"], f"{where}: current"
        if "counts" in step:
            assert counts == step["counts"], f"{where}: counts"
    return trace


# ------------------------------------------------------------------ mesh traces


def run_mesh(trace: dict[str, Any], record: bool = False) -> dict[str, Any]:
    """Who connects and who offers (sidecar/core/mesh.py): `pairs` of two peers
    ({peer_id, peer_type}) under a `mesh` and the room's `leader` (if any), each
    with `wants` and `offerer` (the first offers); `backoff` the delays (ms) of
    attempts 1, 2, ...; `offers` the offers of new transports taken from peers
    ({peer, at, taken}); `closes` the channels `me` closes when the room is listed
    under `leader` ({mesh, me, linked, leader, unwanted})."""
    from sidecar.contract import SignalPeer
    from sidecar.core.mesh import OfferBudget, backoff_s, is_offerer, unwanted, wants

    def peer(p: dict[str, Any]) -> SignalPeer:
        return SignalPeer(
            peer_id=p["peer_id"],
            name="x",
            peer_type=p["peer_type"],
            display_class=None if p["peer_type"] == "controller" else "audience",
            started_at=0,
        )

    for case in trace["pairs"]:
        a, b = peer(case["a"]), peer(case["b"])
        leader = case.get("leader")
        got = {
            "wants": wants(case["mesh"], a, b, leader),
            "offerer": is_offerer(a.peer_id, b.peer_id),
        }
        if record:
            case.update(got)
        else:
            assert got == {k: case[k] for k in got}, f"pair {case}"
    for case in trace.get("closes", []):
        linked = [peer(p) for p in case["linked"]]
        closed = unwanted(case["mesh"], peer(case["me"]), linked, case.get("leader"))
        if record:
            case["unwanted"] = closed
        else:
            assert closed == case["unwanted"], f"closes {case}"
    delays = [round(backoff_s(n) * 1000) for n in range(1, len(trace["backoff"]) + 1)]
    if record:
        trace["backoff"] = delays
    else:
        assert delays == trace["backoff"]
    budget = OfferBudget()
    for offer in trace.get("offers", []):
        taken = budget.take(offer["peer"], offer["at"])
        if record:
            offer["taken"] = taken
        else:
            assert taken == offer["taken"], f"offer {offer}"
    return trace


# -------------------------------------------------------------- follower traces


def run_follower(trace: dict[str, Any], record: bool = False) -> dict[str, Any]:
    """A follower's registration (sidecar/core/follower.py): `follower` {term,
    keyed, at}; steps at `at` of `received` {frame}, `unsealed` {error} or
    `tick`, with `out` ({"beat": {seq, term}}, {"deliver": its type}, {"lost":
    {reason, silent_ms}}), and optionally `deadline` and `term` after the step."""
    from sidecar.contract import decode_signal
    from sidecar.core.follower import Beat, Deliver, FollowerCore, Lost

    setup = trace["follower"]
    core = FollowerCore(term=setup["term"], now=float(setup.get("at", 0)), keyed=setup["keyed"])
    for n, step in enumerate(trace["steps"]):
        ((name, args),) = step["in"].items()
        now = float(step["at"])
        if name == "received":
            core.received(decode_signal(json.dumps(args["frame"])), now)
        elif name == "unsealed":
            core.unsealed(args["error"], now)
        elif name == "tick":
            core.tick(now)
        else:
            raise AssertionError(f"unknown input {name!r}")
        got: list[Any] = []
        for o in core.take():
            if isinstance(o, Beat):
                got.append({"beat": {"seq": o.seq, "term": o.term}})
            elif isinstance(o, Deliver):
                got.append({"deliver": msgspec.to_builtins(o.frame)["type"]})
            elif isinstance(o, Lost):
                got.append({"lost": {"reason": o.reason, "silent_ms": o.silent_ms}})
        where = f"step {n} ({name} at {step['at']})"
        if record:
            step["out"] = got
            if "deadline" in step:
                step["deadline"] = core.next_deadline()
            if "term" in step:
                step["term"] = core.term
            continue
        assert got == step["out"], f"{where}: outputs"
        if "deadline" in step:
            assert core.next_deadline() == step["deadline"], f"{where}: deadline"
        if "term" in step:
            assert core.term == step["term"], f"{where}: term"
    return trace


RUNNERS = {"link": run_link, "state": run_state, "mesh": run_mesh, "follower": run_follower}


def _ints(value: Any) -> Any:
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, dict):
        return {k: _ints(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_ints(v) for v in value]
    return value


def dump(trace: dict[str, Any]) -> str:
    """One line per step (its outputs one per line when long): a trace reads
    top to bottom like the exchange it is."""

    def one(value: Any) -> str:
        return json.dumps(_ints(value), ensure_ascii=False)

    lines = ["{"]
    head = [k for k in trace if k != "steps"]
    for key in head:
        lines.append(f"  {one(key)}: {one(trace[key])},")
    lines.append('  "steps": [')
    steps = trace["steps"]
    for n, step in enumerate(steps):
        comma = "," if n < len(steps) - 1 else ""
        text = one(step)
        if len(text) <= 160 or not step.get("out"):
            lines.append(f"    {text}{comma}")
            continue
        rest = {k: v for k, v in step.items() if k != "out"}
        inner = one(rest)[1:-1]
        outs = ",\n".join(f"      {one(o)}" for o in step["out"])
        lines.append(f'    {{{inner}, "out": [\n{outs}\n    ]}}{comma}')
    lines.append("  ]")
    lines.append("}")
    return "\n".join(lines) + "\n"


def main(argv: list[str]) -> None:
    if len(argv) < 2 or argv[0] != "record":
        raise SystemExit("usage: python -m tests.traces record <trace.json>...")
    for name in argv[1:]:
        path = Path(name)
        trace = json.loads(path.read_text())
        RUNNERS[path.parent.name](trace, record=True)
        path.write_text(dump(trace) if "steps" in trace else json.dumps(trace, indent=1) + "\n")
        print(f"recorded {path}")


if __name__ == "__main__":
    main(sys.argv[1:])
