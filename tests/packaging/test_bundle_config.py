"""The example's bundle configuration for every platform, as the pinned Tauri CLI reads
it: `tauri.conf.json` merged with each `tauri.<platform>.conf.json` (a JSON merge
patch, what the CLI applies on that platform) must satisfy the CLI's own config
schema. The macOS and Windows files are not bundled here (no such machine): this is
what catches a misspelt key in them before a release job does."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import jsonschema  # type: ignore[import-untyped]
import pytest

EXAMPLE = Path(__file__).resolve().parents[2] / "tauri-bridge" / "example"
SCHEMA = EXAMPLE / "node_modules" / "@tauri-apps" / "cli" / "config.schema.json"
SUPPORT = "binaries/mobile-worship-sidecar-internal"


def merged(platform: str) -> dict[str, Any]:
    def merge(a: Any, b: Any) -> Any:
        if not isinstance(a, dict) or not isinstance(b, dict):
            return copy.deepcopy(b)
        out = copy.deepcopy(a)
        for key, value in b.items():
            out[key] = merge(out.get(key), value)
        return out

    base = json.loads((EXAMPLE / "src-tauri" / "tauri.conf.json").read_text())
    extra = json.loads((EXAMPLE / "src-tauri" / f"tauri.{platform}.conf.json").read_text())
    return dict(merge(base, extra))


@pytest.mark.parametrize("platform", ["linux", "macos", "windows"])
def test_each_platform_s_config_is_valid_and_carries_the_support_folder(platform: str) -> None:
    if not SCHEMA.exists():
        pytest.fail(f"{SCHEMA} is missing: npm ci in tauri-bridge/example (the test command does)")
    config = merged(platform)
    errors = [e.message for e in jsonschema.Draft7Validator(json.loads(SCHEMA.read_text()))
              .iter_errors(config)]  # fmt: skip
    assert errors == []
    bundle = config["bundle"]
    assert bundle["externalBin"] == ["binaries/mobile-worship-sidecar"]
    if platform == "linux":
        for kind in ("deb", "rpm", "appimage"):
            files = bundle["linux"][kind]["files"]
            assert files["/usr/bin/mobile-worship-sidecar-internal"] == SUPPORT
    elif platform == "macos":
        assert bundle["macOS"]["files"]["MacOS/mobile-worship-sidecar-internal"] == SUPPORT
        assert bundle["macOS"]["hardenedRuntime"] is True
        assert (EXAMPLE / "src-tauri" / bundle["macOS"]["entitlements"]).exists()
    else:
        assert bundle["resources"][f"{SUPPORT}/"] == "mobile-worship-sidecar-internal/"
