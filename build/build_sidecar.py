"""Build the frozen sidecar for Tauri: one command, the host's target by default.

    uv run --group build python build/build_sidecar.py [--target TRIPLE] [--out DIR]

Writes `DIR/mobile-worship-sidecar-<triple>[.exe]` (what `bundle.externalBin`
names) and, beside it, `DIR/mobile-worship-sidecar-internal/` (the one-folder
bundle's support files, which the executable looks for next to itself).
DIR defaults to the example app's `tauri-bridge/example/src-tauri/binaries`.

PyInstaller does not cross-compile: `--target` only names the output, and
must match the machine (or, on macOS, the architecture of the Python used:
build on Apple silicon for aarch64-apple-darwin, on Intel or under Rosetta
with an x86_64 Python for x86_64-apple-darwin).
"""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SPEC = REPO / "build" / "mobile-worship-sidecar.spec"
NAME = "mobile-worship-sidecar"
CONTENTS = f"{NAME}-internal"
DEFAULT_OUT = REPO / "tauri-bridge" / "example" / "src-tauri" / "binaries"

_FALLBACK_TRIPLES = {
    ("Linux", "x86_64"): "x86_64-unknown-linux-gnu",
    ("Linux", "aarch64"): "aarch64-unknown-linux-gnu",
    ("Darwin", "arm64"): "aarch64-apple-darwin",
    ("Darwin", "x86_64"): "x86_64-apple-darwin",
    ("Windows", "AMD64"): "x86_64-pc-windows-msvc",
}


def host_triple() -> str:
    """The Rust host triple (`rustc -vV`), what Tauri appends to externalBin."""
    try:
        out = subprocess.run(
            ["rustc", "-vV"], capture_output=True, text=True, check=True, timeout=30
        ).stdout
        for line in out.splitlines():
            if line.startswith("host:"):
                return line.split(":", 1)[1].strip()
    except (OSError, subprocess.SubprocessError):
        pass
    key = (platform.system(), platform.machine())
    if key not in _FALLBACK_TRIPLES:
        sys.exit(f"cannot tell the target triple of {key}: pass --target")
    return _FALLBACK_TRIPLES[key]


def build(bundle: str, work: Path) -> Path:
    """Run PyInstaller; returns what it produced (a folder or a file)."""
    env = {**os.environ, "MW_BUNDLE": bundle, "MW_NAME": NAME, "MW_CONTENTS": CONTENTS}
    dist = work / "dist"
    subprocess.run(
        [
            sys.executable,
            "-m",
            "PyInstaller",
            "--noconfirm",
            "--log-level",
            "WARN",
            "--distpath",
            str(dist),
            "--workpath",
            str(work / "work"),
            str(SPEC),
        ],
        check=True,
        env=env,
        cwd=REPO,
    )
    return dist / NAME


def install(produced: Path, bundle: str, out: Path, triple: str) -> Path:
    """Copy the build where Tauri expects it, named with the target triple."""
    exe_suffix = ".exe" if "windows" in triple else ""
    out.mkdir(parents=True, exist_ok=True)
    target = out / f"{NAME}-{triple}{exe_suffix}"
    if bundle == "onefile":
        shutil.copy2(produced.with_suffix(exe_suffix) if exe_suffix else produced, target)
        return target
    shutil.copy2(produced / f"{NAME}{exe_suffix}", target)
    contents = out / CONTENTS
    if contents.exists():
        shutil.rmtree(contents)
    shutil.copytree(produced / CONTENTS, contents, symlinks=True)
    return target


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--target", help="Rust target triple (default: rustc's host)")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="output folder")
    parser.add_argument(
        "--bundle",
        choices=("onedir", "onefile"),
        default="onedir",
        help="PyInstaller bundle kind (onedir: chosen by measurement, see README)",
    )
    parser.add_argument("--work", type=Path, default=REPO / "build" / "out")
    args = parser.parse_args()
    triple = args.target or host_triple()
    started = time.monotonic()
    produced = build(args.bundle, args.work / args.bundle)
    target = install(produced, args.bundle, args.out, triple)
    print(f"built {target} ({args.bundle}) in {time.monotonic() - started:.0f} s", file=sys.stderr)
    print(target)
    return 0


if __name__ == "__main__":
    sys.exit(main())
