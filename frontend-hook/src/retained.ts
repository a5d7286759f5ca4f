/**
 * The room's retained state as the hook keeps it: a pure part of the reducer.
 *
 * The sidecar tells every change as `webrtc:state` (in order), and `get_state`
 * reads the whole map. A read may describe the map as it was before an event
 * that has already arrived, so both go through the room's own order: per key
 * the entry with the later version wins (time, then counter, then origin),
 * as on every peer (docs/api.md, "Retained state"). A key that the read lacks
 * is dropped only if no event touched it after the read was issued.
 */
import type { StateEntry, StateVersion } from "./generated/sidecar-types";

export interface RetainedState {
  /** Per key, the latest entry seen; `value` null: cleared. */
  entries: Readonly<Record<string, StateEntry>>;
  /** Per key, the logical clock of the event that last set it. */
  clocks: Readonly<Record<string, number>>;
}

export const initialRetained: RetainedState = { entries: {}, clocks: {} };

/** Negative when `a` is the earlier write, as the sidecar orders them. */
export function compareVersions(a: StateEntry, b: StateEntry): number {
  const time = a.version.time - b.version.time;
  if (time !== 0) return time;
  const counter = a.version.counter - b.version.counter;
  if (counter !== 0) return counter;
  return a.origin < b.origin ? -1 : a.origin > b.origin ? 1 : 0;
}

function later(held: StateEntry | undefined, entry: StateEntry): boolean {
  return held === undefined || compareVersions(held, entry) < 0;
}

/** A `webrtc:state` event, at logical clock `at`. */
export function applyStateEvent(state: RetainedState, entry: StateEntry, at: number): RetainedState {
  if (!later(state.entries[entry.key], entry)) return state;
  return {
    entries: { ...state.entries, [entry.key]: entry },
    clocks: { ...state.clocks, [entry.key]: at },
  };
}

/** The result of a `get_state` issued at logical clock `issued`. */
export function mergeStateSnapshot(
  state: RetainedState,
  snapshot: readonly StateEntry[],
  issued: number,
): RetainedState {
  const entries: Record<string, StateEntry> = {};
  const clocks: Record<string, number> = {};
  const read = new Map(snapshot.map((e) => [e.key, e]));
  for (const [key, held] of Object.entries(state.entries)) {
    const newer = (state.clocks[key] ?? 0) > issued;
    if (read.has(key) || newer) {
      entries[key] = held;
      clocks[key] = state.clocks[key] ?? 0;
    }
  }
  for (const entry of snapshot) {
    if (later(entries[entry.key], entry)) entries[entry.key] = entry;
  }
  return { entries, clocks };
}

/** The current map: keys with a value. */
export function selectState(state: RetainedState): Readonly<Record<string, StateEntry>> {
  const current: Record<string, StateEntry> = {};
  for (const [key, entry] of Object.entries(state.entries)) {
    if (entry.value !== null) current[key] = entry;
  }
  return current;
}

export type { StateEntry, StateVersion };
