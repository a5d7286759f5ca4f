"""The repository documents itself: docs/api.md describes every method and
notification of docs/openrpc.json (their params and result fields too), and
nothing points at files outside the repository."""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
API = (ROOT / "docs" / "api.md").read_text(encoding="utf-8")
OPENRPC: dict[str, Any] = json.loads((ROOT / "docs" / "openrpc.json").read_text(encoding="utf-8"))


def _section(heading: str) -> str:
    start = API.index(heading)
    following = re.search(r"^#{1,3} ", API[start + len(heading) :], flags=re.MULTILINE)
    end = start + len(heading) + (following.start() if following else len(API))
    return API[start:end]


def _fields(schema: dict[str, Any]) -> list[str]:
    if "$ref" in schema:
        name = schema["$ref"].rsplit("/", 1)[-1]
        schema = OPENRPC["components"]["schemas"][name]
    return list(schema.get("properties", {}))


def test_every_method_has_a_section_naming_each_of_its_params() -> None:
    for method in OPENRPC["methods"]:
        section = _section(f"### `{method['name']}`")
        for param in method["params"]:
            assert f"`{param['name']}`" in section, (method["name"], param["name"])


def test_every_notification_is_described_with_each_of_its_fields() -> None:
    notifications = _section("## Notifications")
    for note in OPENRPC["x-notifications"]:
        rows = [line for line in notifications.splitlines() if f"`{note['name']}`" in line]
        assert rows, f"{note['name']} is not described in docs/api.md"
        for field in _fields(note["params"]):
            assert field in rows[0], (note["name"], field)


def test_every_error_code_is_listed() -> None:
    errors = _section("## Errors")
    codes = {e["code"] for m in OPENRPC["methods"] for e in m.get("errors", [])}
    for code in codes:
        assert f"`{code}`" in errors, code


def test_nothing_in_the_repository_points_outside_it() -> None:
    tracked = subprocess.run(
        ["git", "ls-files"], cwd=ROOT, capture_output=True, text=True, check=True
    ).stdout.split()
    offenders = [
        path
        for path in tracked
        if path.endswith((".md", ".py", ".ts", ".tsx", ".rs"))
        and (ROOT / path).exists()
        and "shared/spec" in (ROOT / path).read_text(encoding="utf-8", errors="replace")
        and path != "tests/unit/test_docs.py"
    ]
    assert offenders == []
