"""The example app as shipped in its `.deb`: the bundle's size, and the installed
app's time from launch to its sidecar's first answer.

The `.deb` is the one the test command lays out with the Tauri CLI
(`npm run tauri -- bundle --debug --bundles deb` in tauri-bridge/example; a
debug build of the app, a release build of the sidecar). It is unpacked into a
root of its own (what `dpkg -i` writes under /), and the app is launched from
there in a lab namespace under a private Xvfb, `--runs` times, each with empty
data folders. Its time is from the spawn to the sidecar's "sidecar ready" line
in the app's log (tauri-plugin-log; the sidecar writes it once its stdio
server reads requests, and the plugin's first request is answered right
after). Baselines of the same run: the same app from tauri-bridge/target/debug
(not bundled), and the bundled sidecar alone answering `get_leader_status`
(spawn to the answer line, as bench_startup.py measures).

    sudo uv run python bench/bench_bundle.py [--deb PATH] [--runs 5]

Needs Linux, root (a network namespace), Xvfb and the built `.deb`; prints one
JSON document. Every process it starts is stopped at the end.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from bench.bench_startup import first_answer_s  # noqa: E402
from tests.browser.xserver import app_env, start_xvfb  # noqa: E402
from tests.lab import Host, Lab  # noqa: E402

DEBS = REPO / "tauri-bridge" / "target" / "debug" / "bundle" / "deb"
BUILT = REPO / "tauri-bridge" / "target" / "debug" / "mobile-worship-example"
LOG_DIR = Path("data") / "org.mobileworship.example" / "logs"
READY = b"sidecar ready"
LIMIT_S = 60.0


def size_of(path: Path) -> int:
    if path.is_file():
        return path.stat().st_size
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file() and not p.is_symlink())


def control_field(deb: Path, field: str) -> str:
    out = subprocess.run(
        ["dpkg-deb", "-f", str(deb), field], capture_output=True, text=True, check=True
    )
    return out.stdout.strip()


def launch_to_ready_s(host: Host, app: Path) -> float:
    """Spawn the app (a private X server, empty data folders); seconds until its log
    holds the sidecar's ready line. The app and the X server are stopped after."""
    work = Path(tempfile.mkdtemp(prefix="mw-bundle-bench-"))
    xvfb, display = start_xvfb(work / "xvfb.log")
    process: subprocess.Popen[bytes] | None = None
    try:
        env = app_env(work, display)
        started = time.perf_counter()
        process = host.spawn([str(app)], env=env, stdout=subprocess.DEVNULL,
                             stderr=subprocess.DEVNULL)  # fmt: skip
        logs = work / LOG_DIR
        while True:
            for log in logs.glob("*.log") if logs.is_dir() else []:
                if READY in log.read_bytes():
                    return time.perf_counter() - started
            if process.poll() is not None:
                raise RuntimeError(
                    f"{app} exited ({process.returncode}) before its sidecar was ready"
                )
            if time.perf_counter() - started > LIMIT_S:
                raise RuntimeError(f"{app}: no sidecar ready line in {LIMIT_S} s")
            time.sleep(0.005)  # the log file, polled: nothing else tells
    finally:
        if process is not None:
            process.terminate()
            try:
                process.wait(10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(10)
        xvfb.terminate()
        xvfb.wait(10)
        shutil.rmtree(work, ignore_errors=True)


def sidecar_first_answer_s(host: Host, sidecar: Path) -> float:
    """Spawn to the answer line of `get_leader_status`, inside `host` (bench_startup's)."""
    return first_answer_s(host.command([str(sidecar)]))


def stats(samples: list[float]) -> dict[str, Any]:
    ms = sorted(s * 1000 for s in samples)
    return {
        "median_ms": round(statistics.median(ms), 1),
        "min_ms": round(ms[0], 1),
        "max_ms": round(ms[-1], 1),
        "n": len(ms),
    }


def run(deb: Path, runs: int) -> dict[str, Any]:
    root = Path(tempfile.mkdtemp(prefix="mw-bundle-root-"))
    lab = Lab()
    try:
        subprocess.run(["dpkg-deb", "-x", str(deb), str(root)], check=True, timeout=60)
        bin_dir = root / "usr" / "bin"
        host = lab.add_host("app")
        installed, built, alone = [], [], []
        for _ in range(runs):  # interleaved, so drift touches all three alike
            installed.append(launch_to_ready_s(host, bin_dir / "mobile-worship-example"))
            built.append(launch_to_ready_s(host, BUILT))
            alone.append(sidecar_first_answer_s(host, bin_dir / "mobile-worship-sidecar"))
        return {
            "deb": {
                "file": deb.name,
                "bytes": deb.stat().st_size,
                "installed_size_kib": int(control_field(deb, "Installed-Size")),
            },
            "installed": {
                "app_bytes": size_of(bin_dir / "mobile-worship-example"),
                "sidecar_bytes": size_of(bin_dir / "mobile-worship-sidecar"),
                "sidecar_support_bytes": size_of(bin_dir / "mobile-worship-sidecar-internal"),
            },
            "launch_to_sidecar_ready": {
                "installed_from_deb": stats(installed),
                "baseline_built_app": stats(built),
                "baseline_bundled_sidecar_alone_first_answer": stats(alone),
            },
        }
    finally:
        lab.close()
        shutil.rmtree(root, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--deb", type=Path, default=None)
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    deb = args.deb or max(DEBS.glob("*.deb"), default=None, key=lambda p: p.stat().st_mtime)
    if deb is None:
        sys.exit(f"no .deb in {DEBS}: run ./scripts/test (or the Tauri CLI's bundle) first")
    result = {
        "benchmark": "bench_bundle",
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": {"platform": platform.platform(), "cpus": os.cpu_count()},
        "runs": args.runs,
        **run(deb, args.runs),
    }
    print(json.dumps(result))


if __name__ == "__main__":
    main()
