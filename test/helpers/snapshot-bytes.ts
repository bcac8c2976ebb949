import { readFileSync } from "node:fs";
import { performance } from "node:perf_hooks";
import { map } from "rxjs";
import { defineStage, port } from "../../runtime/index.js";
import {
  createDesignDriver,
  DESIGN_DEFAULTS,
  createTrendingHandler,
} from "../../actors/plan/index.js";
import { encodeEnvelope } from "../../actors/host/index.js";
import type { StageOutput } from "../../actors/host/index.js";
import { loadMergedHandler, parseInput } from "../../actors/stages/index.js";
import type { ParsedRecord, EventType } from "../../actors/contract/index.js";
import { subjects } from "../../actors/contract/index.js";
import { createStageState, type StageStateInternal } from "../../state/stage-state.js";
import { readSections } from "../../state/sections.js";
import type { SnapshotStore, StateDb } from "../../state/store.js";
import { generateLog } from "./events.js";

/**
 * What the design-path stages' snapshots write, map by map: the REES46 head replayed through the
 * stage handlers in memory, a snapshot (StageState.takeDelta and the JSON.stringify of its plain
 * maps, as state/store.ts capture does) every `every` events. JSON maps' bytes are their part of
 * the delta's JSON text; binary maps' bytes are their sections' (sections.ts).
 */
export interface MapWrite {
  stage: string;
  map: string;
  form: "json" | "binary";
  /** Bytes over all snapshots. */
  bytes: number;
  /** Keys written (puts + deletions) over all snapshots. */
  keys: number;
}

export interface SnapshotMeasure {
  events: number;
  snapshots: number;
  maps: MapWrite[];
  /** Time of each snapshot's capture per stage (takeDelta + JSON.stringify), ms. */
  cpuMs: Map<string, number[]>;
}

export const REES46_HEAD = new URL("../../../shared/data/rees46/2019-Oct-head.csv", import.meta.url)
  .pathname;

/** The REES46 log as parse would give it (one partition, time order, no dedupe). */
export function rees46Records(path = REES46_HEAD, limit = Infinity): ParsedRecord[] {
  const lines = readFileSync(path, "utf8").split(/\r?\n/);
  const out: ParsedRecord[] = [];
  let progress = -1;
  for (const line of lines.slice(1)) {
    if (!line || out.length >= limit) continue;
    const f = line.split(",");
    const ts = Date.parse(f[0]!.replace(" UTC", "Z").replace(" ", "T"));
    const price = f[6] ? Number(f[6]) : -1;
    out.push({
      id: `e${out.length}`,
      t: f[1] as EventType,
      ts,
      u: f[7]!,
      i: f[2]!,
      c: (f[4] ?? "").split(".")[0] ?? "",
      b: f[5] ?? "",
      pr: Number.isFinite(price) ? price : -1,
      r: -1,
      s: out.length + 1,
      wb: progress,
    });
    if (ts > progress) progress = ts;
  }
  return out.sort((a, b) => a.ts - b.ts || a.s - b.s);
}

const NO_OUTPUT: StageOutput = {
  emit: () => undefined,
  touch: () => undefined,
  setProgress: () => undefined,
  raw: () => undefined,
  kvPut: () => undefined,
  count: () => undefined,
};

/** A recorder of the EVENTS sequences a merged stage is fed. */
const sink = defineStage({
  name: "sink",
  input: port<ParsedRecord>(),
  ports: {},
  create: () => ({ operator: (b$) => b$.pipe(map(() => ({}))), view: {} }),
});

function snapshotter() {
  const writes = new Map<string, MapWrite>();
  const cpuMs = new Map<string, number[]>();
  let snapshots = 0;
  return {
    take(stage: string, state: StageStateInternal) {
      const t0 = performance.now();
      const delta = state.takeDelta();
      const json = delta.maps.filter(([name]) => !delta.binary.has(name));
      const text = json.length > 0 ? JSON.stringify(json) : "";
      const ms = performance.now() - t0;
      const list = cpuMs.get(stage);
      if (list) list.push(ms);
      else cpuMs.set(stage, [ms]);
      void text;
      const add = (name: string, form: MapWrite["form"], bytes: number, keys: number) => {
        const id = `${stage}/${name}`;
        const w = writes.get(id) ?? { stage, map: name, form, bytes: 0, keys: 0 };
        w.form = form;
        w.bytes += bytes;
        w.keys += keys;
        writes.set(id, w);
      };
      for (const m of json)
        add(m[0], "json", JSON.stringify(m).length + 1, m[1].length / 2 + m[2].length);
      if (delta.bin)
        for (const s of readSections(delta.bin)) add(s.name, "binary", s.end - s.start, s.count);
    },
    tick: () => void snapshots++,
    result: (events: number): SnapshotMeasure => ({
      events,
      snapshots,
      maps: [...writes.values()],
      cpuMs,
    }),
  };
}

/**
 * The design stages (window, interest-ranking, popularity-join, popularity) and trending fed the
 * records in hops of `hop` records, snapshotted every `every` records.
 */
export function measureDesignStages(
  records: readonly ParsedRecord[],
  every = 1000,
  hop = 50,
  store?: (stage: string) => SnapshotStore,
): SnapshotMeasure {
  const states = {
    window: createStageState(),
    interest: createStageState(),
    join: createStageState(),
    popularity: createStageState(),
    trending: createStageState(),
  };
  const rows = new Map<string, unknown>();
  const driver = createDesignDriver(
    { preset: "ecommerce", ...DESIGN_DEFAULTS },
    {
      state: (name) => states[name],
      table: {
        get: (k) => rows.get(k),
        set: (k, v) => void rows.set(k, v),
        entries: () => rows.entries(),
      },
    },
  );
  const trending = createTrendingHandler(states.trending, NO_OUTPUT, {
    partition: 0,
    oneHourOutOfOrdernessMs: 2 * 3_600_000,
    oneDayOutOfOrdernessMs: 26 * 3_600_000,
    weights: { view: 1, click: 2, cart: 3, purchase: 5 },
    topK: 100,
  });
  const snap = snapshotter();
  let hops = 0;
  let since = 0;
  for (let x = 0; x < records.length; x += hop) {
    const batch = records.slice(x, x + hop);
    driver.feed(batch);
    const wm = batch.reduce((m, r) => Math.max(m, r.ts), -1);
    trending.handle(
      { seq: ++hops, subject: "", data: encodeEnvelope(x + batch.length, wm, batch), headers: {} },
      x,
    );
    since += batch.length;
    if (since >= every || x + hop >= records.length) {
      since = 0;
      snap.tick();
      for (const [name, st] of Object.entries(states))
        if (store) {
          // Through the store (its checkpoints included), committed in order.
          const batch = store(name).capture(st);
          const prev = pending.pop() ?? Promise.resolve();
          pending.push(prev.then(() => batch.commit()));
        } else snap.take(name, st);
    }
  }
  return snap.result(records.length);
}

/**
 * A merged stage over `partitions` partitions, the last of which reports only every `lag` hops
 * (a partition behind the others: the rest wait for it), snapshotted every `every` records.
 */
export async function measureMerged(
  records: readonly ParsedRecord[],
  partitions = 4,
  lag = 60,
  every = 1000,
  hop = 25,
): Promise<SnapshotMeasure> {
  const state = createStageState();
  const h = await loadMergedHandler(sink, state, {}, parseInput(partitions));
  const snap = snapshotter();
  let seq = 0;
  let since = 0;
  let held: ParsedRecord[] = [];
  let heldUpTo = 0;
  const send = (p: number, upTo: number, recs: ParsedRecord[]) =>
    h.handle(
      { seq: ++seq, subject: subjects.parse(p), data: encodeEnvelope(upTo, 0, recs), headers: {} },
      0,
    );
  let n = 0;
  for (let x = 0; x < records.length; x += hop) {
    const batch = records.slice(x, x + hop);
    const upTo = batch[batch.length - 1]!.s;
    for (let p = 0; p < partitions - 1; p++)
      send(
        p,
        upTo,
        batch.filter((r) => Number(r.u) % partitions === p),
      );
    held.push(...batch.filter((r) => Number(r.u) % partitions === partitions - 1));
    heldUpTo = upTo;
    if (++n % lag === 0 || x + hop >= records.length) {
      send(partitions - 1, heldUpTo, held);
      held = [];
    }
    since += batch.length;
    if (since >= every) {
      since = 0;
      snap.tick();
      snap.take("merged", state);
    }
  }
  return snap.result(records.length);
}

/** A table of a measure: bytes and keys per snapshot and per event, per map. */
export function formatMeasure(m: SnapshotMeasure): string {
  const lines = [`${m.events} events, ${m.snapshots} snapshots`];
  for (const w of m.maps)
    lines.push(
      `${w.stage}/${w.map} (${w.form}): ${Math.round(w.bytes / m.snapshots)} B/snapshot, ` +
        `${(w.bytes / m.events).toFixed(1)} B/event, ${(w.keys / m.snapshots).toFixed(0)} keys/snapshot`,
    );
  for (const [stage, ms] of m.cpuMs) {
    const sorted = [...ms].sort((a, b) => a - b);
    const total = ms.reduce((a, b) => a + b, 0);
    lines.push(
      `${stage} capture: median ${(sorted[sorted.length >> 1]! * 1000).toFixed(0)} µs/snapshot, ` +
        `${((total / m.events) * 1000).toFixed(2)} µs/event`,
    );
  }
  return lines.join("\n");
}

/**
 * The design stages and trending run as measureDesignStages does, their snapshots written to
 * `db` (state/store.ts) every `every` records; then each stage's snapshot loaded `loads` times.
 * Returns each stage's median load time, ms.
 */
export async function measureRestore(
  db: StateDb,
  records: readonly ParsedRecord[],
  every = 1000,
  loads = 5,
): Promise<Map<string, number>> {
  const stores = new Map<string, SnapshotStore>();
  measureDesignStages(records, every, 50, (stage) => {
    let s = stores.get(stage);
    if (!s) stores.set(stage, (s = db.instance(stage, 0)));
    return s;
  });
  await Promise.all(pending.splice(0));
  const out = new Map<string, number>();
  for (const [stage, store] of stores) {
    const times: number[] = [];
    for (let n = 0; n < loads; n++) {
      const t0 = performance.now();
      const st = await store.load();
      st.keyCount();
      times.push(performance.now() - t0);
    }
    out.set(stage, times.sort((a, b) => a - b)[times.length >> 1]!);
  }
  return out;
}
const pending: Promise<void>[] = [];

/**
 * A seeded 9-day log (generateLog: 60,000 events, 3,000 users, 800 items, 2 in 9 events a
 * purchase) as parse would give it, in time order: items with purchases in most hours of the
 * popularity horizon.
 */
export function syntheticRecords(events = 60_000): ParsedRecord[] {
  const log = generateLog({
    seed: 1,
    events,
    users: 3000,
    items: 800,
    categories: ["a", "b", "c"],
    start: Date.UTC(2026, 0, 1),
    spanMs: 9 * 24 * 3_600_000,
    lateShare: 0,
    lateByMs: 0,
  });
  let wb = -1;
  const out = log.map((e, x): ParsedRecord => {
    const ts = Date.parse(String(e.event_ts));
    const r: ParsedRecord = {
      id: String(e.event_id),
      t: e.event_type as EventType,
      ts,
      u: String(e.user_id),
      i: String(e.item_id),
      c: String(e.category_code).split(".")[0]!,
      b: String(e.brand),
      pr: Number(e.price),
      r: -1,
      s: x + 1,
      wb,
    };
    wb = Math.max(wb, ts);
    return r;
  });
  return out.sort((a, b) => a.ts - b.ts || a.s - b.s);
}
