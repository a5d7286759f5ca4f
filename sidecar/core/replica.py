"""This peer's copy of the room's retained state, kept in step over the channels.

The rules are those of `sidecar.core.state` (what a write is, which wins); this
module moves writes between peers:

* Our own write goes to every peer with an open channel: as the control
  message itself to the message's targets (with its key and version), as
  a `state` message to the others.
* A write we take from a peer (newer than what we held) is told to our host
  as `webrtc:state` and passed on to every other open channel. A write
  reaches every peer linked to the room by some chain of channels, even
  where the mesh does not pair every two peers; a peer that already has it
  ignores it, so each write crosses each channel at most twice.
* A channel that opens carries our whole map first, in order before any
  later message, and takes the other side's: a display that joins
  mid-service, or two halves of a healed partition, have the same state as
  soon as the snapshots are across.

A channel that cannot take a `state` message at once (its window is full,
or messages wait before it) gets the keys marked instead, and their current
values when it has room: what waits per channel is bounded by the number of
keys, not by the number of writes.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from typing import Any, Protocol

from sidecar.contract import (
    ControlEnvelope,
    Retained,
    StateEntry,
    StateEnvelope,
    StateVersion,
    payload_size,
)
from sidecar.core.state import Entry, RoomState, Version, chunks


class Channel(Protocol):
    """What the replica needs of an open channel (sidecar.net.link.Link)."""

    @property
    def peer_id(self) -> str: ...

    def send_in_order(self, envelope: StateEnvelope) -> None:
        """Queue it behind what waits (raises ConnectionError when not open). If the
        channel closes before it went, it is dropped: the next channel's snapshot
        carries it."""
        ...

    def send_now(self, envelope: StateEnvelope) -> bool:
        """Send it if it can go at once; False: nothing was sent."""
        ...


log = logging.getLogger(__name__)


class Replica:
    """Retained state on this peer. `links()` lists the open channels, `link(id)`
    finds one; `notify(entry)` tells the host of a change of the map."""

    def __init__(
        self,
        me: str,
        *,
        links: Callable[[], Sequence[Channel]],
        link: Callable[[str], Channel | None],
        notify: Callable[[StateEntry], None],
        now_ms: Callable[[], int],
    ) -> None:
        self.state = RoomState(me)
        self._links = links
        self._link = link
        self._notify = notify
        self._now_ms = now_ms
        self._marked: dict[str, dict[str, None]] = {}
        """Per peer: keys whose current value still has to go to it."""

    def current(self) -> list[StateEntry]:
        return [_wire(e) for e in self.state.current()]

    # ------------------------------------------------------------ our writes

    def write(self, key: str, value: Any, size: int) -> Retained:
        """Our write: the map changes now (raises StateError beyond the bounds);
        the stamp goes with the control message to its targets."""
        before = self.state.get(key)
        entry = self.state.set(key, value, size, self._now_ms())
        if _shows(before, entry):
            self._notify(_wire(entry))
        return Retained(key=key, version=_version(entry.version))

    def spread(self, key: str, skip: set[str]) -> None:
        """Send our write of `key` to every open channel but `skip` (the
        message's targets, which had it with the message)."""
        entry = self.state.get(key)
        if entry is not None:
            self._pass_on([entry], skip)

    # ----------------------------------------------------------- their writes

    def received_control(self, peer_id: str, envelope: ControlEnvelope) -> None:
        """A control message that carries a write: take the write first."""
        if envelope.retain is None:
            return
        stamp = envelope.retain
        self._take(
            peer_id,
            [
                StateEntry(
                    key=stamp.key,
                    value=envelope.payload,
                    origin=envelope.from_,
                    version=stamp.version,
                )
            ],
        )

    def received_state(self, peer_id: str, envelope: StateEnvelope) -> None:
        self._take(peer_id, envelope.entries)

    def _take(self, peer_id: str, entries: list[StateEntry]) -> None:
        now = self._now_ms()
        newer: list[Entry] = []
        for wire in entries:
            entry = _entry(wire)
            before = self.state.get(entry.key)
            if self.state.merge(entry, now):
                newer.append(entry)
                if _shows(before, entry):
                    self._notify(wire)
        if newer:
            self._pass_on(newer, {peer_id})

    # ---------------------------------------------------------------- channels

    def channel_open(self, peer_id: str) -> None:
        """A new channel: our whole map goes first, queued in order."""
        self._marked.pop(peer_id, None)
        link = self._link(peer_id)
        snapshot = self.state.snapshot()
        if link is None or not snapshot:
            return
        for group in chunks(snapshot):
            try:
                link.send_in_order(StateEnvelope(entries=[_wire(e) for e in group]))
            except ConnectionError:
                return  # the next channel sends it again

    def channel_idle(self, peer_id: str) -> None:
        """The channel has room again: the marked keys' current values go."""
        marked = self._marked.pop(peer_id, None)
        link = self._link(peer_id)
        if not marked or link is None:
            return
        entries = [e for key in marked if (e := self.state.get(key)) is not None]
        self._send_or_mark(link, entries)

    def channel_closed(self, peer_id: str) -> None:
        self._marked.pop(peer_id, None)  # the next channel's snapshot has it all

    def _pass_on(self, entries: list[Entry], skip: set[str]) -> None:
        for link in self._links():
            if link.peer_id not in skip:
                self._send_or_mark(link, entries)

    def _send_or_mark(self, link: Channel, entries: list[Entry]) -> None:
        marked = self._marked.get(link.peer_id)
        groups = chunks(entries)
        while groups and marked is None:
            if not link.send_now(StateEnvelope(entries=[_wire(e) for e in groups[0]])):
                break
            groups.pop(0)
        if groups:
            keys = self._marked.setdefault(link.peer_id, {})
            for group in groups:
                keys.update(dict.fromkeys(e.key for e in group))


def _shows(before: Entry | None, after: Entry) -> bool:
    """Whether the host sees a change: clearing a key it never had is none
    (the tombstone is kept and passed on all the same)."""
    return not after.cleared or (before is not None and not before.cleared)


def _version(version: Version) -> StateVersion:
    return StateVersion(time=version.time, counter=version.counter)


def _wire(entry: Entry) -> StateEntry:
    return StateEntry(
        key=entry.key,
        value=entry.value,
        origin=entry.version.origin,
        version=_version(entry.version),
    )


def _entry(wire: StateEntry) -> Entry:
    version = Version(wire.version.time, wire.version.counter, wire.origin)
    return Entry(wire.key, wire.value, version, payload_size(wire.value))
