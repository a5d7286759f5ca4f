"""The shared traces (tests/vectors/<core>/*.json) against the Python cores;
frontend-hook/test/traces.test.ts runs the same files against the TypeScript
cores. See tests/traces.py for the format."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.traces import RUNNERS, traces

ALL = [p for core in RUNNERS for p in traces(core)]


@pytest.mark.parametrize("path", ALL, ids=[f"{p.parent.name}/{p.stem}" for p in ALL])
def test_trace(path: Path) -> None:
    RUNNERS[path.parent.name](json.loads(path.read_text()))


def test_every_rule_of_the_channel_section_has_a_trace() -> None:
    """Each subsection of docs/protocol.md's "Data channels" is named by a trace."""
    protocol = (Path(__file__).resolve().parents[2] / "docs" / "protocol.md").read_text()
    section = protocol.split("## 3. Data channels", 1)[1].split("\n## ", 1)[0]
    headings = [line[4:].strip() for line in section.splitlines() if line.startswith("### ")]
    named = " ".join(
        rule
        for core in ("link", "mesh")
        for p in traces(core)
        for rule in json.loads(p.read_text()).get("rules", [])
    )
    missing = [h for h in headings if h not in named and h != "Retained state"]
    assert missing == []
    assert traces("state"), "retained state has its own traces"
