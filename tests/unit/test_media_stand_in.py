"""sidecar.compat.media stands in for exactly what aiortc imports of its media
side: these tests read the installed aiortc's sources, so an aiortc upgrade that
imports another PyAV name, another submodule or another codec name fails here,
before it fails (or silently loads PyAV again) in a room."""

from __future__ import annotations

import ast
import importlib.util
import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from sidecar.compat.media import MARK, STAND_INS

MEDIA_ONLY = ("aiortc.contrib",)
"""aiortc modules the sidecar never imports (media players and recorders)."""

NATIVE_MEDIA = ("/av/", "av.libs", "libavcodec", "libavformat", "libavutil", "libswscale")


def _aiortc_root() -> Path:
    spec = importlib.util.find_spec("aiortc")  # located, not imported
    assert spec is not None and spec.origin is not None
    return Path(spec.origin).parent


def _modules() -> Iterator[tuple[str, ast.Module]]:
    """Every aiortc module that a peer may load (not the stood-in ones, not contrib)."""
    root = _aiortc_root()
    for path in sorted(root.rglob("*.py")):
        parts = path.relative_to(root.parent).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        if name in STAND_INS or name.startswith(MEDIA_ONLY):
            continue
        package = name if parts[-1] == "__init__" else name.rsplit(".", 1)[0]
        tree = ast.parse(path.read_text(encoding="utf-8"))
        yield package, tree


def _absolute(package: str, node: ast.ImportFrom) -> str:
    if node.level == 0:
        return node.module or ""
    base = package.split(".")
    base = base[: len(base) - (node.level - 1)]
    return ".".join([*base, *([node.module] if node.module else [])])


def _used() -> dict[str, set[str]]:
    """What the loadable aiortc modules take from the media side: module → names."""
    used: dict[str, set[str]] = {}
    for package, tree in _modules():
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom):
                source = _absolute(package, node)
                if source == "av" or source.startswith("av.") or source in STAND_INS:
                    used.setdefault(source, set()).update(a.name for a in node.names)
            elif isinstance(node, ast.Import):
                for alias in node.names:
                    if alias.name == "av" or alias.name.startswith("av."):
                        used.setdefault(alias.name, set())
            elif (
                isinstance(node, ast.Attribute)
                and isinstance(node.value, ast.Name)
                and node.value.id == "av"
            ):
                used.setdefault("av", set()).add(node.attr)
    return used


def test_every_media_name_aiortc_imports_has_a_stand_in() -> None:
    used = _used()
    assert used, "aiortc imports nothing of PyAV any more: sidecar.compat.media can go"
    missing = {
        module: sorted(names - set(STAND_INS.get(module, {})))
        for module, names in used.items()
        if module not in STAND_INS or names - set(STAND_INS[module])
    }
    assert missing == {}, f"aiortc imports media names that have no stand-in: {missing}"


def test_no_stand_in_is_left_that_aiortc_does_not_import() -> None:
    used = _used()
    unused = {
        module: sorted(set(names) - used.get(module, set()))
        for module, names in STAND_INS.items()
        if set(names) - used.get(module, set())
    }
    assert unused == {}, f"stand-ins aiortc no longer imports (remove them): {unused}"


PROBE = """
import json, sys
import sidecar.net.channels, sidecar.net.transport  # what a peer imports for its channels
from sidecar.compat import media
from aiortc.codecs import get_encoder, CODECS
try:
    get_encoder(CODECS["audio"][0])
    refused = None
except media.MediaUnavailable as exc:
    refused = str(exc)
with open("/proc/self/maps") as maps:
    mapped = sorted({line.split()[-1] for line in maps if "/" in line})
print(json.dumps({
    "active": media.active(),
    "refused": refused,
    "av": sorted(n for n in sys.modules if n == "av" or n.startswith("av.")),
    "stand_ins": sorted(n for n, m in sys.modules.items() if getattr(m, media.MARK, False)),
    "contrib": sorted(n for n in sys.modules if n.startswith("aiortc.contrib")),
    "mapped": mapped,
}))
"""


@pytest.mark.skipif(sys.platform != "linux", reason="reads /proc/self/maps")
def test_a_fresh_sidecar_loads_its_channel_stack_without_pyav_or_ffmpeg() -> None:
    out = subprocess.run(
        [sys.executable, "-c", PROBE], capture_output=True, text=True, timeout=60, check=True
    ).stdout
    seen = json.loads(out)
    assert seen["active"] is True
    assert seen["av"] == sorted(n for n in STAND_INS if n == "av" or n.startswith("av."))
    assert set(seen["stand_ins"]) <= set(STAND_INS)
    assert "aiortc.codecs.opus" in seen["stand_ins"]
    assert seen["contrib"] == []
    assert [p for p in seen["mapped"] if any(m in p for m in NATIVE_MEDIA)] == []
    # media asked of it fails loudly
    assert "data channels only" in seen["refused"]
    assert MARK == "__mw_stand_in__"
