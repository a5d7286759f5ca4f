"""The room's retained state, sans I/O: the current value of each key.

A control message sent with `retain: key` becomes the room's current value
for that key (a null payload clears it). Every peer keeps the values it has
seen, not only their writer's, so the state outlives the writer and a change
of leader, and a display that joins mid-service gets it at once: each side
of a new channel sends the other its whole map first (docs/protocol.md,
"Retained state").

Conflicts resolve the same way everywhere: the last writer wins, "last" by a
version that every peer orders identically, a hybrid logical clock (Kulkarni
et al., 2014): the writer's wall clock in milliseconds, never below a
version the writer has already seen, a counter for writes within one
millisecond, and the writer's peer id to break a tie. A write made after
seeing another is thus ordered after it even when the writer's clock is
behind. Merging takes the larger version per key, which is commutative,
associative and idempotent: any order of deliveries, duplicates and
partitions that ends with every peer having seen every write ends with the
same map everywhere.

A cleared key stays as a tombstone (value None), so that an older value
arriving later cannot bring it back. Tombstones are kept up to
MAX_TOMBSTONES; beyond that the oldest quarter is forgotten (a peer that
missed such a clear and still holds the older value could then bring it
back).

Bounds, the same on every peer: at most MAX_KEYS keys with a value, at most
MAX_STATE_BYTES of values in all (each value as its JSON serialization), a
key at most MAX_KEY_BYTES of UTF-8 without control characters. A write
beyond them is refused to its writer and ignored by everyone else, so maps
converge only while the union of the writes fits: two halves of a partition
that each fill the room with different keys keep what each had first.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

MAX_KEYS = 1024
MAX_TOMBSTONES = 1024
MAX_STATE_BYTES = 1024 * 1024
MAX_KEY_BYTES = 128
MAX_VALUE_BYTES = 64 * 1024
"""A value is a control message's payload: the same 64 KiB bound."""
TOMBSTONE_BYTES = 4
"""What a cleared key costs in a snapshot (`null`)."""

MAX_DRIFT_MS = 24 * 3600 * 1000
"""A version this far ahead of our clock is not believed: a peer whose clock is
a day fast (or a hostile one) must not hold a key for everyone else."""

CHUNK_BYTES = 32 * 1024
"""Values per `state` message: a snapshot goes as several messages, so that
the receiver's acks (every 16 datagrams, ~18 KiB) keep it moving and no
message nears the channel's 64 KiB limit. A larger value goes alone."""


@dataclass(frozen=True, slots=True, order=True)
class Version:
    """Ordered as (time, counter, origin): the larger is the later write."""

    time: int
    """The writer's hybrid clock: milliseconds since the Unix epoch."""
    counter: int
    origin: str
    """The writer's peer id (its string order breaks a tie)."""


@dataclass(frozen=True, slots=True)
class Entry:
    key: str
    value: Any
    """The payload; None: the key was cleared (a tombstone)."""
    version: Version
    size: int
    """The value's JSON serialization, in bytes (what MAX_STATE_BYTES counts)."""

    @property
    def cleared(self) -> bool:
        return self.value is None


class StateError(ValueError):
    """A write the bounds do not allow; the message says which."""


def key_problem(key: str) -> str | None:
    """Why `key` cannot be a key, or None."""
    if not key:
        return "a key is at least one character"
    if len(key.encode()) > MAX_KEY_BYTES:
        return f"a key is at most {MAX_KEY_BYTES} bytes of UTF-8"
    if any(ch < " " or ch == "\x7f" for ch in key):
        return "a key has no control characters"
    return None


class RoomState:
    """One peer's copy of the room's state, and its hybrid clock."""

    def __init__(self, me: str) -> None:
        self.me = me
        self._entries: dict[str, Entry] = {}
        self._values = 0
        self._tombstones = 0
        self._bytes = 0
        self._clock = Version(0, 0, me)

    def __len__(self) -> int:
        """Keys with a value."""
        return self._values

    @property
    def size(self) -> int:
        """Bytes of every value together."""
        return self._bytes

    @property
    def tombstones(self) -> int:
        return self._tombstones

    def get(self, key: str) -> Entry | None:
        """The key's entry, tombstone included; None when never seen."""
        return self._entries.get(key)

    def current(self) -> list[Entry]:
        """The keys that have a value, by key."""
        return sorted((e for e in self._entries.values() if not e.cleared), key=_by_key)

    def snapshot(self) -> list[Entry]:
        """What the other side of a new channel needs: values and tombstones."""
        return list(self._entries.values())

    def set(self, key: str, value: Any, size: int, now_ms: int) -> Entry:
        """Our own write (value None: clear the key). Raises StateError beyond
        the bounds; then nothing changed."""
        if why := key_problem(key):
            raise StateError(why)
        if value is not None and size > MAX_VALUE_BYTES:
            raise StateError(f"a value is at most {MAX_VALUE_BYTES} bytes")
        entry = Entry(key, value, self._next(now_ms), _cost(value, size))
        if why := self._no_room(entry):
            raise StateError(why)
        self._put(entry)
        return entry

    def merge(self, entry: Entry, now_ms: int) -> bool:
        """Someone's write, seen now. True when it is newer than what we hold:
        it is now the key's entry. Older, duplicate, unbelievable or
        out-of-bounds writes change nothing."""
        if key_problem(entry.key) is not None:
            return False
        if entry.version.time > now_ms + MAX_DRIFT_MS or entry.size > MAX_VALUE_BYTES:
            return False
        held = self._entries.get(entry.key)
        if held is not None and held.version >= entry.version:
            return False
        if self._no_room(entry):
            return False
        self._seen(entry.version)
        self._put(entry)
        return True

    # -- the clock

    def _next(self, now_ms: int) -> Version:
        last = self._clock
        if now_ms > last.time:
            self._clock = Version(now_ms, 0, self.me)
        else:
            self._clock = Version(last.time, last.counter + 1, self.me)
        return self._clock

    def _seen(self, version: Version) -> None:
        """Our next write is ordered after every version we took."""
        if (version.time, version.counter) > (self._clock.time, self._clock.counter):
            self._clock = Version(version.time, version.counter, self.me)

    # -- the bounds

    def _no_room(self, entry: Entry) -> str | None:
        if entry.cleared:
            return None  # a tombstone always fits: the oldest one makes way
        held = self._entries.get(entry.key)
        had_value = held is not None and not held.cleared
        if not had_value and self._values >= MAX_KEYS:
            return f"the room's state holds at most {MAX_KEYS} keys"
        grown = self._bytes - (held.size if held and had_value else 0) + entry.size
        if grown > MAX_STATE_BYTES:
            return f"the room's state holds at most {MAX_STATE_BYTES} bytes of values"
        return None

    def _put(self, entry: Entry) -> None:
        held = self._entries.pop(entry.key, None)
        if held is not None:
            self._count(held, -1)
        self._entries[entry.key] = entry
        self._count(entry, +1)
        if self._tombstones > MAX_TOMBSTONES:
            self._forget_tombstones()

    def _forget_tombstones(self) -> None:
        """Down to three quarters of the bound, the oldest first: one sort per
        MAX_TOMBSTONES / 4 clears, not a scan per clear (a peer sending
        thousands of clears must not cost quadratic time)."""
        cleared = sorted((e for e in self._entries.values() if e.cleared), key=_by_version)
        for entry in cleared[: len(cleared) - MAX_TOMBSTONES * 3 // 4]:
            del self._entries[entry.key]
            self._count(entry, -1)

    def _count(self, entry: Entry, sign: int) -> None:
        if entry.cleared:
            self._tombstones += sign
        else:
            self._values += sign
            self._bytes += sign * entry.size


def chunks(entries: Iterable[Entry], limit: int = CHUNK_BYTES) -> list[list[Entry]]:
    """Split entries, in order, into groups of at most `limit` bytes of values
    (a larger one alone)."""
    out: list[list[Entry]] = []
    group: list[Entry] = []
    used = 0
    for entry in entries:
        cost = entry.size + len(entry.key) + 96  # the key and the version's JSON
        if group and used + cost > limit:
            out.append(group)
            group, used = [], 0
        group.append(entry)
        used += cost
    if group:
        out.append(group)
    return out


def _cost(value: Any, size: int) -> int:
    return TOMBSTONE_BYTES if value is None else size


def _by_key(entry: Entry) -> str:
    return entry.key


def _by_version(entry: Entry) -> Version:
    return entry.version
