"""Telling a silent peer from a process that was not running.

A laptop that sleeps, or a process stopped with SIGSTOP, wakes with every
timer overdue: the heartbeats it did not receive look like a dead leader,
the pings it did not answer like dead channels, and a leader would drop all
its followers at once. None of that silence was theirs. So each liveness
clock checks how late it woke: a timer that fires more than `SUSPEND_S` after
it was due means the process was suspended, and the clock grants the peers a
fresh interval (or asks them once) instead of declaring them lost.
"""

from __future__ import annotations

SUSPEND_S = 2.0
"""Lateness of a timer that means a suspension: an event loop that is merely
busy is late by milliseconds, a suspended process by the length of its sleep."""
SUSPEND_MS = SUSPEND_S * 1000


def overslept(due: float, now: float) -> float:
    """Seconds the process was suspended past `due`, or 0.0 when it was not."""
    late = now - due
    return late if late > SUSPEND_S else 0.0
