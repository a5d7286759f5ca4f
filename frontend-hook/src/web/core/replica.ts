/**
 * This peer's copy of the room's retained state, kept in step over the
 * channels (sidecar/core/replica.py): our writes go to every open channel,
 * writes we take are passed on, a new channel carries our whole map first (in
 * chunks of about 32 KiB), and a channel that cannot take a `state` message
 * at once gets the keys marked instead, their current values going once it
 * has room. The merge and the bounds are `RoomState`'s.
 */
import type { ControlEnvelope, Retained, StateEntry, StateEnvelope } from "../../generated/sidecar-types";
import { chunks, type Entry, entryOf, RoomState, wireOf } from "./state";

/** What the replica needs of an open channel (the web peer's link). */
export interface Channel {
  readonly peerId: string;
  /** Queued behind what waits (throws when not open); dropped if the channel closes first. */
  sendInOrder(envelope: StateEnvelope): void;
  /** Sent if it can go at once; false: nothing was sent. */
  sendNow(envelope: StateEnvelope): boolean;
}

function shows(before: Entry | undefined, after: Entry): boolean {
  return after.value !== null || (before !== undefined && before.value !== null);
}

function envelope(entries: Entry[]): StateEnvelope {
  return { type: "state", entries: entries.map(wireOf) };
}

export class Replica {
  readonly state: RoomState;
  private readonly marked = new Map<string, Set<string>>();

  constructor(
    me: string,
    private readonly channels: () => Channel[],
    private readonly channel: (peerId: string) => Channel | undefined,
    private readonly notify: (entry: StateEntry) => void,
    private readonly nowMs: () => number,
  ) {
    this.state = new RoomState(me);
  }

  current(): StateEntry[] {
    return this.state.current().map(wireOf);
  }

  /** Our write: the map changes now (throws StateError beyond the bounds). */
  write(key: string, value: unknown, size: number): Retained {
    const before = this.state.get(key);
    const entry = this.state.set(key, value, size, this.nowMs());
    if (shows(before, entry)) this.notify(wireOf(entry));
    return { key, version: { time: entry.version.time, counter: entry.version.counter } };
  }

  /** Send our write of `key` to every open channel but `skip` (the message's targets). */
  spread(key: string, skip: ReadonlySet<string>): void {
    const entry = this.state.get(key);
    if (entry !== undefined) this.passOn([entry], skip);
  }

  receivedControl(peerId: string, control: ControlEnvelope): void {
    const stamp = control.retain;
    if (stamp === null || stamp === undefined) return;
    this.take(peerId, [{ key: stamp.key, value: control.payload, origin: control.from, version: stamp.version }]);
  }

  receivedState(peerId: string, state: StateEnvelope): void {
    this.take(peerId, state.entries);
  }

  private take(peerId: string, entries: StateEntry[]): void {
    const now = this.nowMs();
    const newer: Entry[] = [];
    for (const wire of entries) {
      const entry = entryOf(wire);
      const before = this.state.get(entry.key);
      if (this.state.merge(entry, now)) {
        newer.push(entry);
        if (shows(before, entry)) this.notify(wire);
      }
    }
    if (newer.length > 0) this.passOn(newer, new Set([peerId]));
  }

  /** A new channel: our whole map goes first, queued in order. */
  channelOpen(peerId: string): void {
    this.marked.delete(peerId);
    const link = this.channel(peerId);
    const snapshot = this.state.snapshot();
    if (link === undefined || snapshot.length === 0) return;
    for (const group of chunks(snapshot)) {
      try {
        link.sendInOrder(envelope(group));
      } catch {
        return; // the next channel sends it again
      }
    }
  }

  /** The channel has room again: the marked keys' current values go. */
  channelIdle(peerId: string): void {
    const marked = this.marked.get(peerId);
    this.marked.delete(peerId);
    const link = this.channel(peerId);
    if (marked === undefined || link === undefined) return;
    const entries = [...marked].map((k) => this.state.get(k)).filter((e): e is Entry => e !== undefined);
    this.sendOrMark(link, entries);
  }

  channelClosed(peerId: string): void {
    this.marked.delete(peerId);
  }

  private passOn(entries: Entry[], skip: ReadonlySet<string>): void {
    for (const link of this.channels()) if (!skip.has(link.peerId)) this.sendOrMark(link, entries);
  }

  private sendOrMark(link: Channel, entries: Entry[]): void {
    const groups = chunks(entries);
    if (!this.marked.has(link.peerId)) {
      while (groups.length > 0 && link.sendNow(envelope(groups[0] ?? []))) groups.shift();
    }
    if (groups.length > 0) {
      let keys = this.marked.get(link.peerId);
      if (keys === undefined) this.marked.set(link.peerId, (keys = new Set()));
      for (const group of groups) for (const e of group) keys.add(e.key);
    }
  }
}
