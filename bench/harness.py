"""What the lab benches share: timing summaries, the machine's description, and
running scenarios round by round, each round in a fresh lab."""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import statistics
import sys
from collections.abc import Awaitable, Callable, Coroutine, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from tests.e2e.room import Room  # noqa: E402
from tests.lab import Lab, lab_unavailable_reason, sweep_stale_labs  # noqa: E402

T = TypeVar("T")


def summary(seconds: Sequence[float]) -> dict[str, float]:
    ordered = sorted(seconds)
    return {
        "median_s": round(statistics.median(ordered), 4),
        "min_s": round(ordered[0], 4),
        "max_s": round(ordered[-1], 4),
    }


def machine() -> dict[str, Any]:
    return {
        "platform": platform.platform(),
        "python": platform.python_version(),
        "cpus": os.cpu_count(),
    }


def report(benchmark: str, **sections: Any) -> dict[str, Any]:
    """The JSON document a bench prints."""
    return {
        "benchmark": benchmark,
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": machine(),
        **sections,
    }


async def rounds_of(measure: Callable[[Room], Awaitable[T]], rounds: int, logs: Path) -> list[T]:
    """`measure` once per round, each in a fresh lab with a room of real sidecars."""
    samples = []
    for _ in range(rounds):
        async with Lab() as lab:
            room = Room(lab, logs)
            try:
                samples.append(await measure(room))
            finally:
                await room.close()
    return samples


def cli(
    benchmark: str,
    description: str,
    scenarios: Sequence[str],
    default_rounds: int,
    run: Callable[[int, list[str]], Coroutine[Any, Any, dict[str, Any]]],
) -> int:
    """`--rounds N --only NAME…`; prints the JSON report (or why it was skipped)."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--rounds", type=int, default=default_rounds)
    parser.add_argument("--only", nargs="*", default=[], choices=list(scenarios))
    args = parser.parse_args()
    reason = lab_unavailable_reason()
    if reason is not None:
        print(json.dumps({"benchmark": benchmark, "skipped": reason}))
        return 0
    sweep_stale_labs()
    print(json.dumps(asyncio.run(run(args.rounds, args.only)), indent=2))
    return 0
