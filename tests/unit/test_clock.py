"""A timer that fires late by more than SUSPEND_S means the process was suspended."""

from __future__ import annotations

from sidecar.core.clock import SUSPEND_S, overslept


def test_a_busy_loop_is_not_a_suspension_a_stopped_process_is() -> None:
    assert overslept(10.0, 10.0) == 0.0
    assert overslept(10.0, 10.0 + SUSPEND_S) == 0.0
    assert overslept(10.0, 30.0) == 20.0
    assert overslept(10.0, 9.0) == 0.0  # woken early
