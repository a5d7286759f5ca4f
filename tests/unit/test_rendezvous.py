"""The rendezvous plan (sidecar/core/rendezvous.py): which targets are valid, when
each is asked, and what the host is told of it."""

from __future__ import annotations

import pytest

from sidecar.core.rendezvous import (
    ASK_FIRST_S,
    ASK_IN_ROOM_S,
    ASK_MAX_S,
    MAX_TARGETS,
    Rendezvous,
    Target,
    parse_target,
    parse_targets,
)


@pytest.mark.parametrize(
    ("text", "target"),
    [
        ("10.0.0.5", Target("10.0.0.5", 3010)),
        ("10.0.0.5:4000", Target("10.0.0.5", 4000)),
        ("Booth.local", Target("booth.local", 3010)),
        ("booth-pc.example.org.:3011", Target("booth-pc.example.org", 3011)),
    ],
)
def test_a_target_is_an_ipv4_address_or_a_host_name_with_an_optional_port(
    text: str, target: Target
) -> None:
    assert parse_target(text) == target


@pytest.mark.parametrize(
    "text",
    ["", ":3010", "10.0.0.5:0", "10.0.0.5:65536", "10.0.0.5:x", "224.0.0.251", "0.0.0.0",
     "1.2.3", "-booth", "booth..local", "a" * 254, "under_score"],
)  # fmt: skip
def test_anything_else_is_refused_with_the_reason(text: str) -> None:
    with pytest.raises(ValueError, match=r"."):
        parse_target(text)


def test_at_most_eight_targets_and_duplicates_count_once() -> None:
    assert parse_targets(["10.0.0.5", "10.0.0.5:3010"]) == (Target("10.0.0.5", 3010),)
    with pytest.raises(ValueError, match="at most"):
        parse_targets([f"10.0.0.{n}" for n in range(MAX_TARGETS + 1)])
    with pytest.raises(ValueError, match=r"\[1\]"):
        parse_targets(["10.0.0.5", "bad host"])


def test_every_target_is_asked_at_once_and_not_again_while_asking() -> None:
    plan = Rendezvous(parse_targets(["10.0.0.5", "10.0.0.6"]))
    assert plan.due(0.0) == list(plan.targets)
    assert plan.due(10.0) == []  # both still asking
    assert {s.state for s in plan.statuses.values()} == {"asking"}


def test_a_silent_target_is_asked_again_later_and_later_up_to_the_bound() -> None:
    (target,) = targets = parse_targets(["10.0.0.5"])
    plan = Rendezvous(targets)
    now, gaps = 0.0, []
    for _ in range(8):
        assert plan.due(now) == [target]
        plan.failed(target, now, "cannot connect")
        deadline = plan.next_deadline()
        assert deadline is not None
        gaps.append(deadline - now)
        now = deadline
    assert gaps[0] == ASK_FIRST_S and max(gaps) == ASK_MAX_S
    assert gaps == sorted(gaps)
    status = plan.statuses[target]
    assert status.state == "unreachable" and status.error == "cannot connect"


def test_in_a_room_a_target_is_asked_every_ten_seconds_and_at_once_after_a_loss() -> None:
    (target,) = targets = parse_targets(["10.0.0.5"])
    plan = Rendezvous(targets)
    plan.due(0.0)
    plan.resolved(target, ["10.0.0.5"])
    plan.answered(target, 1.0, in_room=True)
    assert plan.next_deadline() == 1.0 + ASK_IN_ROOM_S
    assert plan.statuses[target].state == "answered" and plan.addresses() == {"10.0.0.5"}
    plan.ask_all_soon(2.0)
    assert plan.due(2.0) == [target]


def test_a_refusal_is_reported_as_such() -> None:
    (target,) = targets = parse_targets(["10.0.0.5"])
    plan = Rendezvous(targets)
    plan.due(0.0)
    plan.failed(target, 0.0, "wrong_room: another room", refused=True)
    assert plan.statuses[target].state == "refused"
