"""Startup of the sidecar: time to the first JSON-RPC answer, size on disk.

Compares the source install (`.venv/bin/python -m sidecar`), the frozen
one-folder build and, when given, a one-file build; cold (page cache dropped,
Linux as root only) and warm. Baseline of the same run: a bare interpreter
answering one line (`python -c`), the floor under any Python sidecar.

    uv run python bench/bench_startup.py --onedir PATH [--onefile PATH]
        [--variant NAME=PATH ...] [--runs 10]

Prints one JSON document. The first answer is to `get_leader_status`, which
touches no network, so it runs anywhere (no namespace needed).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
REQUEST = b'{"jsonrpc":"2.0","method":"get_leader_status","id":1}\n'
BARE = "import sys; sys.stdin.readline(); sys.stdout.write('{}\\n'); sys.stdout.flush()"


def first_answer_s(argv: list[str]) -> float:
    """Spawn, send one request, time until its answer line, then close stdin."""
    started = time.perf_counter()
    process = subprocess.Popen(
        argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL
    )
    assert process.stdin is not None and process.stdout is not None
    process.stdin.write(REQUEST)
    process.stdin.flush()
    line = process.stdout.readline()
    elapsed = time.perf_counter() - started
    process.stdin.close()
    process.wait(10)
    if not line:
        raise RuntimeError(f"no answer from {argv}")
    return elapsed


def drop_caches() -> bool:
    """Cold start: empty the page cache (Linux, root); False where not allowed."""
    try:
        os.sync()
        Path("/proc/sys/vm/drop_caches").write_text("3\n")
        return True
    except OSError:
        return False


def size_mb(path: Path) -> float:
    if path.is_file():
        return round(path.stat().st_size / 1e6, 1)
    total = sum(p.stat().st_size for p in path.rglob("*") if p.is_file() and not p.is_symlink())
    return round(total / 1e6, 1)


def breakdown_mb(executable: Path, top: int = 14) -> dict[str, float]:
    """Size of a one-folder build by package: each top-level entry of its contents
    folder (a package's `X.libs` counted with `X`), the largest first; the executable
    (which holds the compressed pure-Python modules) and the rest summed."""
    sizes: dict[str, int] = {"(executable: bootloader and pure-Python archive)": 0}
    sizes["(executable: bootloader and pure-Python archive)"] = executable.stat().st_size
    for contents in executable.parent.glob("*-internal"):
        for entry in contents.iterdir():
            name = entry.name.removesuffix(".libs")
            if entry.is_symlink():
                continue  # counted where it points
            if entry.is_file():
                total = entry.stat().st_size
            else:
                total = sum(
                    p.stat().st_size for p in entry.rglob("*") if p.is_file() and not p.is_symlink()
                )
            sizes[name] = sizes.get(name, 0) + total
    ranked = sorted(sizes.items(), key=lambda kv: -kv[1])
    shown = {name: round(size / 1e6, 1) for name, size in ranked[:top]}
    shown["(everything else)"] = round(sum(size for _, size in ranked[top:]) / 1e6, 1)
    return shown


def measure(argv: list[str], runs: int) -> dict[str, float | None]:
    cold = first_answer_s(argv) if drop_caches() else None
    first_answer_s(argv)  # warm the cache
    warm = sorted(first_answer_s(argv) for _ in range(runs))
    return {
        "cold_s": round(cold, 3) if cold is not None else None,
        "warm_median_s": round(statistics.median(warm), 3),
        "warm_min_s": round(warm[0], 3),
        "warm_max_s": round(warm[-1], 3),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--onedir", type=Path, help="the frozen one-folder executable")
    parser.add_argument("--onefile", type=Path, help="a frozen one-file executable")
    parser.add_argument(
        "--variant",
        action="append",
        default=[],
        metavar="NAME=PATH",
        help="another one-folder executable to compare (repeatable)",
    )
    parser.add_argument("--runs", type=int, default=10)
    args = parser.parse_args()
    python = REPO / ".venv" / "bin" / "python"
    variants: dict[str, tuple[list[str], Path]] = {
        "source": ([str(python), "-m", "sidecar"], REPO / ".venv"),
    }
    if args.onedir:
        variants["frozen_onedir"] = ([str(args.onedir)], args.onedir.parent)
    if args.onefile:
        variants["frozen_onefile"] = ([str(args.onefile)], args.onefile)
    for spec in args.variant:
        name, _, path = spec.partition("=")
        variants[name] = ([path], Path(path).parent)
    results: dict[str, dict[str, object]] = {}
    for name, (argv, on_disk) in variants.items():
        results[name] = {**measure(argv, args.runs), "size_mb": size_mb(on_disk)}
        if name != "source" and on_disk.is_dir():
            results[name]["breakdown_mb"] = breakdown_mb(Path(argv[0]))
        print(f"{name}: {results[name]}", file=sys.stderr)
    baseline = measure([str(python), "-c", BARE], args.runs)
    print(
        json.dumps(
            {
                "benchmark": "bench_startup",
                "date": datetime.now(UTC).isoformat(timespec="seconds"),
                "machine": {
                    "platform": platform.platform(),
                    "python": platform.python_version(),
                    "cpus": os.cpu_count(),
                },
                "goal_first_answer_frozen_s": 0.25,
                "goal_size_mb": 80,
                "results": results,
                "baselines": {"bare_python_answer": baseline},
                "notes": "size_mb of source = the whole .venv (dev tools included)",
            },
            indent=2,
        )
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
