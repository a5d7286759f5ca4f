/**
 * The room's retained state, sans I/O: the same rules, bounds and messages as
 * sidecar/core/state.py, decided by the same traces (tests/vectors/state/).
 * Last writer wins by a hybrid logical clock (time, counter, origin); a null
 * value is a tombstone; the bounds are the same on every peer so that every
 * peer that took the same writes holds the same map. The reasons are in the
 * Python module.
 */
import type { StateEntry } from "../../generated/sidecar-types";
import { byteSize, codePoints } from "./text";

export const MAX_KEYS = 1024;
export const MAX_TOMBSTONES = 1024;
export const MAX_STATE_BYTES = 1024 * 1024;
export const MAX_KEY_BYTES = 128;
export const MAX_VALUE_BYTES = 64 * 1024;
export const TOMBSTONE_BYTES = 4;
export const MAX_DRIFT_MS = 24 * 3600 * 1000;
export const CHUNK_BYTES = 32 * 1024;

export interface Version {
  readonly time: number;
  readonly counter: number;
  readonly origin: string;
}

export interface Entry {
  readonly key: string;
  /** null: the key was cleared (a tombstone). */
  readonly value: unknown;
  readonly version: Version;
  /** The value's JSON serialization, in bytes. */
  readonly size: number;
}

export class StateError extends Error {}

/** Ordered as (time, counter, origin): negative when a is the earlier write. */
export function compareVersions(a: Version, b: Version): number {
  if (a.time !== b.time) return a.time - b.time;
  if (a.counter !== b.counter) return a.counter - b.counter;
  return a.origin < b.origin ? -1 : a.origin > b.origin ? 1 : 0;
}

/** Strings ordered by code point (JavaScript's `<` compares UTF-16 units). */
export function compareCodePoints(a: string, b: string): number {
  const x = a[Symbol.iterator]();
  const y = b[Symbol.iterator]();
  for (;;) {
    const p = x.next();
    const q = y.next();
    if (p.done === true || q.done === true) return (p.done === true ? 0 : 1) - (q.done === true ? 0 : 1);
    const d = (p.value.codePointAt(0) ?? 0) - (q.value.codePointAt(0) ?? 0);
    if (d !== 0) return d;
  }
}

/** Why `key` cannot be a key, or null. */
export function keyProblem(key: string): string | null {
  if (key === "") return "a key is at least one character";
  if (byteSize(key) > MAX_KEY_BYTES) return `a key is at most ${MAX_KEY_BYTES} bytes of UTF-8`;
  // eslint-disable-next-line no-control-regex
  if (/[\x00-\x1f\x7f]/.test(key)) return "a key has no control characters";
  return null;
}

/** The serialized size of a value, the figure the bounds apply to. */
export function valueSize(value: unknown): number {
  return byteSize(JSON.stringify(value ?? null));
}

export function entryOf(wire: StateEntry): Entry {
  return {
    key: wire.key,
    value: wire.value,
    version: { time: wire.version.time, counter: wire.version.counter, origin: wire.origin },
    size: valueSize(wire.value),
  };
}

export function wireOf(entry: Entry): StateEntry {
  return {
    key: entry.key,
    value: entry.value,
    origin: entry.version.origin,
    version: { time: entry.version.time, counter: entry.version.counter },
  };
}

const isCleared = (entry: Entry) => entry.value === null;

/** One peer's copy of the room's state, and its hybrid clock. */
export class RoomState {
  private readonly entries = new Map<string, Entry>();
  private values = 0;
  private tombstoneCount = 0;
  private bytes = 0;
  private clock: Version;

  constructor(readonly me: string) {
    this.clock = { time: 0, counter: 0, origin: me };
  }

  /** Keys with a value. */
  get size(): number {
    return this.values;
  }

  get byteCount(): number {
    return this.bytes;
  }

  get tombstones(): number {
    return this.tombstoneCount;
  }

  get(key: string): Entry | undefined {
    return this.entries.get(key);
  }

  /** The keys that have a value, by key (in code point order, as Python sorts). */
  current(): Entry[] {
    return [...this.entries.values()].filter((e) => !isCleared(e)).sort((a, b) => compareCodePoints(a.key, b.key));
  }

  /** Values and tombstones, for the other side of a new channel. */
  snapshot(): Entry[] {
    return [...this.entries.values()];
  }

  /** Our own write (null: clear the key); throws StateError beyond the bounds. */
  set(key: string, value: unknown, size: number, nowMs: number): Entry {
    const why = keyProblem(key);
    if (why !== null) throw new StateError(why);
    if (value !== null && size > MAX_VALUE_BYTES) throw new StateError(`a value is at most ${MAX_VALUE_BYTES} bytes`);
    const entry: Entry = { key, value, version: this.next(nowMs), size: value === null ? TOMBSTONE_BYTES : size };
    const full = this.noRoom(entry);
    if (full !== null) throw new StateError(full);
    this.put(entry);
    return entry;
  }

  /** Someone's write, seen now: true when it is newer than what we hold (it is now the key's entry). */
  merge(entry: Entry, nowMs: number): boolean {
    if (keyProblem(entry.key) !== null) return false;
    if (entry.version.time > nowMs + MAX_DRIFT_MS || entry.size > MAX_VALUE_BYTES) return false;
    const held = this.entries.get(entry.key);
    if (held !== undefined && compareVersions(held.version, entry.version) >= 0) return false;
    if (this.noRoom(entry) !== null) return false;
    this.seen(entry.version);
    this.put(entry);
    return true;
  }

  private next(nowMs: number): Version {
    const last = this.clock;
    this.clock =
      nowMs > last.time ? { time: nowMs, counter: 0, origin: this.me } : { time: last.time, counter: last.counter + 1, origin: this.me };
    return this.clock;
  }

  private seen(v: Version): void {
    if (v.time > this.clock.time || (v.time === this.clock.time && v.counter > this.clock.counter)) {
      this.clock = { time: v.time, counter: v.counter, origin: this.me };
    }
  }

  private noRoom(entry: Entry): string | null {
    if (isCleared(entry)) return null;
    const held = this.entries.get(entry.key);
    const hadValue = held !== undefined && !isCleared(held);
    if (!hadValue && this.values >= MAX_KEYS) return `the room's state holds at most ${MAX_KEYS} keys`;
    const grown = this.bytes - (hadValue ? held.size : 0) + entry.size;
    if (grown > MAX_STATE_BYTES) return `the room's state holds at most ${MAX_STATE_BYTES} bytes of values`;
    return null;
  }

  private put(entry: Entry): void {
    const held = this.entries.get(entry.key);
    if (held !== undefined) {
      this.entries.delete(entry.key);
      this.count(held, -1);
    }
    this.entries.set(entry.key, entry);
    this.count(entry, 1);
    if (this.tombstoneCount > MAX_TOMBSTONES) this.forgetTombstones();
  }

  private forgetTombstones(): void {
    const cleared = [...this.entries.values()].filter(isCleared).sort((a, b) => compareVersions(a.version, b.version));
    for (const entry of cleared.slice(0, cleared.length - (MAX_TOMBSTONES * 3) / 4)) {
      this.entries.delete(entry.key);
      this.count(entry, -1);
    }
  }

  private count(entry: Entry, sign: number): void {
    if (isCleared(entry)) this.tombstoneCount += sign;
    else {
      this.values += sign;
      this.bytes += sign * entry.size;
    }
  }
}

/** Entries, in order, in groups of at most `limit` bytes of values (a larger one alone). */
export function chunks(entries: Iterable<Entry>, limit = CHUNK_BYTES): Entry[][] {
  const out: Entry[][] = [];
  let group: Entry[] = [];
  let used = 0;
  for (const entry of entries) {
    const cost = entry.size + codePoints(entry.key) + 96;
    if (group.length > 0 && used + cost > limit) {
      out.push(group);
      group = [];
      used = 0;
    }
    group.push(entry);
    used += cost;
  }
  if (group.length > 0) out.push(group);
  return out;
}
