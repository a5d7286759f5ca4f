/**
 * The shared traces (tests/vectors/<core>/*.json) against the TypeScript cores;
 * tests/unit/test_traces.py runs the same files against the Python ones. The
 * format is described in tests/traces.py.
 */
import { readdirSync, readFileSync } from "node:fs";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";

import { describe, expect, it } from "vitest";

import { FollowerCore } from "../src/web/core/follower";
import { LinkCore, type Output } from "../src/web/core/link";
import { backoffMs, isOfferer, OfferBudget, unwanted, wants } from "../src/web/core/mesh";
import { chunks, entryOf, RoomState, StateError, valueSize, wireOf, type Entry } from "../src/web/core/state";
import type { MeshPolicy, PeerType, SignalMessage, StateEntry } from "../src/generated/sidecar-types";

const VECTORS = resolve(dirname(fileURLToPath(import.meta.url)), "../../tests/vectors");
const PAD_MIN = 64;

type Json = null | boolean | number | string | Json[] | { [key: string]: Json };
type Args = Record<string, Json>;
interface Step {
  at?: number;
  in: Record<string, Args>;
  out?: Json[];
  result?: Json;
  deadline?: number | null;
  check?: Record<string, Json>;
  current?: Json;
  counts?: Json;
}
interface Trace {
  description: string;
  link?: { offerer: boolean; web_peer?: boolean; direct?: boolean; at?: number };
  me?: string;
  steps: Step[];
}

function files(core: string): [string, string][] {
  const dir = join(VECTORS, core);
  return readdirSync(dir)
    .filter((f) => f.endsWith(".json"))
    .sort()
    .map((f) => [f.replace(/\.json$/, ""), join(dir, f)]);
}

function load(path: string): unknown {
  return JSON.parse(readFileSync(path, "utf8"));
}

function unpad(value: unknown): unknown {
  if (Array.isArray(value)) return value.map(unpad);
  if (typeof value === "object" && value !== null) {
    const o = value as Record<string, unknown>;
    const keys = Object.keys(o);
    if (keys.length === 1 && keys[0] === "$pad") return "x".repeat(Number(o.$pad));
    return Object.fromEntries(keys.map((k) => [k, unpad(o[k])]));
  }
  return value;
}

function pad(value: unknown): unknown {
  if (typeof value === "string" && value.length >= PAD_MIN && value === "x".repeat(value.length)) return { $pad: value.length };
  if (Array.isArray(value)) return value.map(pad);
  if (typeof value === "object" && value !== null) {
    return Object.fromEntries(Object.entries(value as Record<string, unknown>).map(([k, v]) => [k, pad(v)]));
  }
  return value;
}

function textOf(args: Args): string {
  if ("envelope" in args) return JSON.stringify(unpad(args.envelope));
  if ("repeat" in args) {
    const [piece, count] = args.repeat as [string, number];
    return piece.repeat(count);
  }
  return args.text as string;
}

// ------------------------------------------------------------------ link

function output(o: Output): unknown {
  switch (o.kind) {
    case "create_offer":
    case "open_relay":
    case "close":
      return { [o.kind]: o.epoch };
    case "create_answer":
    case "accept_answer":
      return { [o.kind]: { epoch: o.epoch, sdp: o.sdp } };
    case "send":
      return { send: { epoch: o.epoch, envelope: pad(JSON.parse(o.text)), must: o.must } };
    case "signal":
      return { signal: { kind: o.signal, epoch: o.epoch, sdp: o.sdp } };
    case "up":
    case "idle":
      return { [o.kind]: {} };
    case "down":
      return { down: { reason: o.reason, unacked: o.unacked } };
    case "message":
      return { message: pad(o.envelope) };
    case "went":
    case "dropped":
      return { [o.kind]: o.ticket };
    case "pong":
      return { pong: { seq: o.seq, rtt_ms: o.rttMs } };
    case "no_pong":
      return { no_pong: o.seq };
  }
}

function connect(core: LinkCore, now: number): void {
  const sync0 = '{"type":"sync","received":0}';
  if (core.offerer) {
    core.offer(now);
    core.localDescription(1, "offer-1", now);
    core.answerReceived(1, "answer-1", now);
  } else {
    core.offerReceived(1, "offer-1", now);
    core.localDescription(1, "answer-1", now);
  }
  core.transportOpen(1, now);
  core.transportMessage(1, sync0, now);
}

function linkInput(core: LinkCore, name: string, a: Args, now: number): unknown {
  const epoch = a.epoch as number;
  const notOpen = (f: () => unknown): unknown => {
    try {
      return f();
    } catch {
      return "not open";
    }
  };
  switch (name) {
    case "connect":
      connect(core, now);
      return null;
    case "offer":
      core.offer(now, a.relay === true);
      return null;
    case "local_description":
      core.localDescription(epoch, a.sdp as string, now);
      return null;
    case "negotiation_failed":
      core.negotiationFailed(epoch, now);
      return null;
    case "route_changed":
      core.routeChanged(now);
      return null;
    case "offer_received":
      core.offerReceived(epoch, a.sdp as string, now);
      return null;
    case "answer_received":
      core.answerReceived(epoch, a.sdp as string, now);
      return null;
    case "relay_received":
      core.relayReceived(epoch, textOf(a), now);
      return null;
    case "transport_open":
      core.transportOpen(epoch, now);
      return null;
    case "transport_message":
      core.transportMessage(epoch, textOf(a), now);
      return null;
    case "transport_closed":
      core.transportClosed(epoch, a.reason as "closed" | "failed", now);
      return null;
    case "send_failed":
      core.sendFailed(epoch, now);
      return null;
    case "transport_binary":
      core.transportBinary(epoch, a.size as number, now);
      return null;
    case "send":
      return notOpen(() => core.sendMessage(textOf(a), (a.id as string | undefined) ?? "", now));
    case "send_now":
      return core.sendNow(textOf(a), now);
    case "cancel":
      core.cancel(a.ticket as number);
      return null;
    case "ping":
      return notOpen(() => core.ping(now, a.timeout as number));
    case "path_changed": {
      const path = a.path as { local: string; remote: string; type: string } | null | undefined;
      const remote = a.remote_addresses as string[] | null | undefined;
      core.pathChanged(
        now,
        new Set((a.lost_local as string[] | undefined) ?? []),
        remote === null || remote === undefined ? null : new Set(remote),
        path === null || path === undefined ? null : { local: path.local, remote: path.remote, remoteType: path.type },
      );
      return null;
    }
    case "set_host_busy":
      core.setHostBusy(a.busy as boolean);
      return null;
    case "close":
      core.close(a.say_bye as boolean);
      return null;
    case "tick":
      core.tick(now);
      return null;
    default:
      throw new Error(`unknown input ${name}`);
  }
}

function linkState(core: LinkCore): Record<string, unknown> {
  return {
    state: core.state,
    epoch: core.epoch,
    via: core.via,
    migrating: core.migrating,
    refused: core.refused,
    unacked: core.unacked(),
  };
}

describe("link traces (tests/vectors/link)", () => {
  for (const [name, path] of files("link")) {
    it(name, () => {
      const trace = load(path) as Trace;
      const setup = trace.link ?? { offerer: true };
      const core = new LinkCore({
        me: "a",
        peerId: "b",
        linkId: "l1",
        offerer: setup.offerer,
        webPeer: setup.web_peer ?? false,
        direct: setup.direct ?? true,
        now: setup.at ?? 0,
      });
      trace.steps.forEach((step, n) => {
        const [[input, args]] = Object.entries(step.in) as [[string, Args]];
        const result = linkInput(core, input, args, step.at ?? 0);
        const where = `step ${n} (${input} at ${String(step.at)})`;
        expect(core.take().map(output), `${where}: outputs`).toEqual(step.out);
        expect(result ?? undefined, `${where}: result`).toEqual(step.result);
        if ("deadline" in step) expect(core.nextDeadline(), `${where}: deadline`).toBe(step.deadline);
        if (step.check) {
          const state = linkState(core);
          expect(Object.fromEntries(Object.keys(step.check).map((k) => [k, state[k]])), `${where}: state`).toEqual(step.check);
        }
      });
    });
  }
});

// ----------------------------------------------------------------- state

function entryJson(entry: Entry): unknown {
  return pad(wireOf(entry));
}

describe("retained-state traces (tests/vectors/state)", () => {
  for (const [name, path] of files("state")) {
    it(name, () => {
      const trace = load(path) as Trace;
      const state = new RoomState(trace.me ?? "a");
      trace.steps.forEach((step, n) => {
        const [[input, a]] = Object.entries(step.in) as [[string, Args]];
        const where = `step ${n} (${input})`;
        let result: unknown;
        if (input === "set") {
          const value = unpad(a.value);
          try {
            result = entryJson(state.set(a.key as string, value, valueSize(value), a.now as number));
          } catch (err) {
            if (!(err instanceof StateError)) throw err;
            result = { error: err.message };
          }
        } else if (input === "merge") {
          result = state.merge(entryOf(unpad(a.entry) as StateEntry), a.now as number);
        } else if (input === "fill") {
          const value = unpad(a.value ?? null);
          let set = 0;
          for (let i = 0; i < (a.count as number); i++) {
            try {
              state.set(`${a.prefix as string}${String(i)}`, value, valueSize(value), (a.now as number) + i);
              set += 1;
            } catch {
              break;
            }
          }
          result = set;
        } else if (input === "chunks") {
          const limit = a.limit as number | undefined;
          result = chunks(state.snapshot(), limit).map((g) => g.map((e) => e.key));
        } else throw new Error(`${where}: unknown input`);
        expect(result, `${where}: result`).toEqual(step.result);
        if ("current" in step) expect(state.current().map(entryJson), `${where}: current`).toEqual(step.current);
        if ("counts" in step) {
          expect({ values: state.size, tombstones: state.tombstones, bytes: state.byteCount }, `${where}: counts`).toEqual(step.counts);
        }
      });
    });
  }
});

// ------------------------------------------------------------------ mesh

interface MeshTrace {
  pairs: {
    mesh: MeshPolicy;
    a: { peer_id: string; peer_type: PeerType };
    b: { peer_id: string; peer_type: PeerType };
    leader?: string;
    wants: boolean;
    offerer: boolean;
  }[];
  backoff: number[];
  offers?: { peer: string; at: number; taken: boolean }[];
  closes?: {
    mesh: MeshPolicy;
    me: { peer_id: string; peer_type: PeerType };
    linked: { peer_id: string; peer_type: PeerType }[];
    leader?: string;
    unwanted: string[];
  }[];
}

describe("mesh traces (tests/vectors/mesh)", () => {
  for (const [name, path] of files("mesh")) {
    it(name, () => {
      const trace = load(path) as MeshTrace;
      for (const pair of trace.pairs) {
        expect({ wants: wants(pair.mesh, pair.a, pair.b, pair.leader ?? null), offerer: isOfferer(pair.a.peer_id, pair.b.peer_id) }, JSON.stringify(pair)).toEqual({
          wants: pair.wants,
          offerer: pair.offerer,
        });
      }
      expect(trace.backoff.map((_, i) => backoffMs(i + 1))).toEqual(trace.backoff);
      const budget = new OfferBudget();
      for (const offer of trace.offers ?? []) expect(budget.take(offer.peer, offer.at), JSON.stringify(offer)).toBe(offer.taken);
      for (const c of trace.closes ?? []) {
        expect(unwanted(c.mesh, c.me, c.linked, c.leader ?? null), JSON.stringify(c)).toEqual(c.unwanted);
      }
    });
  }
});

// -------------------------------------------------------------- follower

interface FollowerTrace {
  follower: { term: number; keyed: boolean; at?: number };
  steps: (Step & { term?: number })[];
}

describe("follower traces (tests/vectors/follower)", () => {
  for (const [name, path] of files("follower")) {
    it(name, () => {
      const trace = load(path) as FollowerTrace;
      const core = new FollowerCore({ term: trace.follower.term, keyed: trace.follower.keyed, now: trace.follower.at ?? 0 });
      trace.steps.forEach((step, n) => {
        const [[input, a]] = Object.entries(step.in) as [[string, Args]];
        const now = step.at ?? 0;
        if (input === "received") core.received(a.frame as unknown as SignalMessage, now);
        else if (input === "unsealed") core.unsealed(a.error as boolean, now);
        else if (input === "tick") core.tick(now);
        else throw new Error(`unknown input ${input}`);
        const got = core.take().map((o) =>
          o.kind === "beat"
            ? { beat: { seq: o.seq, term: o.term } }
            : o.kind === "deliver"
              ? { deliver: o.frame.type }
              : { lost: { reason: o.reason, silent_ms: o.silentMs } },
        );
        const where = `step ${n} (${input} at ${String(step.at)})`;
        expect(got, `${where}: outputs`).toEqual(step.out);
        if ("deadline" in step) expect(core.nextDeadline(), `${where}: deadline`).toBe(step.deadline);
        if ("term" in step) expect(core.term, `${where}: term`).toBe(step.term);
      });
    });
  }
});
