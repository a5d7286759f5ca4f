"""The folder tree is the diagram (docs/architecture.md): each folder of sidecar/
is a layer, and what a module may import follows from its folder alone.

    contract/  the messages               imports: contract, the standard library, msgspec
    core/      the pure rules             + core, cryptography, cpace (no asyncio, no sockets)
    compat/    third-party internals      + whatever it stands between
    net/       the adapters (I/O)         + compat, net, and the network libraries
    node/      one running node, wired    + net, node (no network library of its own)
    host/      the process and its API    + node, host (no network library of its own)

An import is an import wherever it is written (in a function, or under
TYPE_CHECKING): a layer that names a higher one depends on it.
"""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

import pytest

SIDECAR = Path(__file__).resolve().parents[2] / "sidecar"
LAYERS = ("contract", "core", "compat", "net", "node", "host")
NETWORK = frozenset({"aiohttp", "zeroconf", "aiortc", "aioice", "av", "ifaddr", "socket", "ssl"})
"""Libraries that talk to the network: only net/ and compat/ import them."""
NO_IO = frozenset({"asyncio", "selectors", "threading", "subprocess", "multiprocessing", "time"})
"""What a pure core never needs: an event loop, threads, processes or a clock of its own."""
STDLIB = frozenset(sys.stdlib_module_names)

MAY_IMPORT: dict[str, frozenset[str]] = {
    "contract": frozenset({"contract"}),
    "core": frozenset({"contract", "core"}),
    "compat": frozenset({"compat"}),
    "net": frozenset({"contract", "core", "compat", "net"}),
    "node": frozenset({"contract", "core", "net", "node"}),
    "host": frozenset({"contract", "core", "node", "host", "compat"}),
}
THIRD_PARTY: dict[str, frozenset[str]] = {
    "contract": frozenset({"msgspec"}),
    "core": frozenset({"msgspec", "cryptography", "cpace"}),
    "node": frozenset({"msgspec"}),
    "host": frozenset({"msgspec"}),
}
"""Third-party packages a layer may import (compat/ and net/ are the adapters: any)."""
TOP_LEVEL = {"__init__.py", "__main__.py"}


def modules() -> list[tuple[str, Path]]:
    found = []
    for path in sorted(SIDECAR.rglob("*.py")):
        rel = path.relative_to(SIDECAR)
        if len(rel.parts) == 1:
            assert rel.name in TOP_LEVEL, f"sidecar/{rel} is in no layer: move it into one"
            continue
        found.append((rel.parts[0], path))
    return found


def imported(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            base = node.module
            names.add(base)
            if base == "sidecar":  # from sidecar import core
                names.update(f"sidecar.{alias.name}" for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level > 0:
            raise AssertionError(f"{path}: relative import; name the layer")
    return names


def problems(layer: str, path: Path) -> list[str]:
    out = []
    for name in sorted(imported(path)):
        top = name.split(".")[0]
        if top == "sidecar":
            parts = name.split(".")
            if len(parts) == 1 or parts[1] == "__version__":
                continue
            if parts[1] not in MAY_IMPORT[layer]:
                out.append(f"{name} (layer {parts[1]})")
        elif top in STDLIB:
            if layer == "core" and top in NO_IO:
                out.append(f"{name} (a pure core does no I/O)")
            elif layer not in ("net", "compat") and top in NETWORK:
                out.append(f"{name} (network: only net/ and compat/)")
        elif layer not in ("net", "compat") and top not in THIRD_PARTY[layer]:
            out.append(f"{name} (third party: not for {layer}/)")
    return out


def test_every_module_is_in_a_layer_folder() -> None:
    layers = {layer for layer, _ in modules()}
    assert layers <= set(LAYERS), f"unknown folders: {layers - set(LAYERS)}"
    assert {"contract", "core", "net", "node", "host"} <= layers


@pytest.mark.parametrize(
    ("layer", "path"), modules(), ids=[str(p.relative_to(SIDECAR)) for _, p in modules()]
)
def test_imports_follow_the_layers(layer: str, path: Path) -> None:
    assert problems(layer, path) == []


def test_the_rule_catches_what_it_is_for(tmp_path: Path) -> None:
    """A core that imports the network, or a contract that imports a core, is caught."""
    bad = tmp_path / "bad.py"
    bad.write_text("import asyncio\nimport aiohttp\nfrom sidecar.net.link import Link\n")
    assert len(problems("core", bad)) == 3
    bad.write_text("from sidecar.core.state import RoomState\n")
    assert problems("contract", bad) == ["sidecar.core.state (layer core)"]
    bad.write_text("from sidecar.host.errors import ApiError\nimport zeroconf\n")
    assert len(problems("node", bad)) == 2


def test_importing_every_core_loads_no_event_loop_and_no_network_library() -> None:
    """What the static rule says, checked at run time: a fresh interpreter that
    imports every module of contract/ and core/ has none of them loaded."""
    names = [
        "sidecar." + ".".join(p.relative_to(SIDECAR).with_suffix("").parts)
        for layer, p in modules()
        if layer in ("contract", "core")
    ]
    watched = sorted(NETWORK | {"asyncio", "jsonrpcserver"})
    code = (
        "import json, sys\n"
        + "".join(f"import {m}\n" for m in names)
        + f"print(json.dumps([m for m in {watched!r} if m in sys.modules]))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert json.loads(out.stdout) == []
