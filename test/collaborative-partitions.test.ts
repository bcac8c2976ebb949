import { describe, expect, it } from "vitest";
import {
  createCollaborative,
  createCollaborativeRows,
  createRowsCopy,
  deltaChunks,
  gatherRatings,
  memRowsStores,
  ECOMMERCE,
  MOVIES,
  type SourcePreset,
  crossingAt,
  judge,
  keepFrom,
  NO_POINTS,
  NO_TRAINER,
  partCrossings,
  sourceEventOf,
  type Crossing,
  type PartPoints,
  type Ratings,
  type TrainerPoints,
} from "../actors/sources/index.js";
import { partitionOf, type ParsedRecord } from "../actors/contract/index.js";

/**
 * The collaborative source's interaction input per user partition (actors/sources/
 * collaborative-points.ts, collaborative-copy.ts, als-gather.ts): whatever the number of
 * partitions, parse's batching,
 * which partitions hear of progress when, and the order partitions' hops are taken in, the
 * training points are those one instance fed every event in input order finds, and the matrix
 * gathered at each is that instance's matrix there, bit for bit.
 */

const R = 3_600_000; // RETRAIN_INTERVAL
const T0 = Date.UTC(2026, 0, 1);

type Item = ParsedRecord | { s: number; idle: number };
const isIdle = (x: Item): x is { s: number; idle: number } => "idle" in x;

/** A seeded generator. */
function rng(seed: number) {
  let x = seed;
  return () => {
    x = (x * 1103515245 + 12345) % 2147483648;
    return x / 2147483648;
  };
}

/** A log: events (some late, some far apart in time) with idle markers among them. */
function log(seed: number, preset: SourcePreset, n: number): Item[] {
  const random = rng(seed);
  const out: Item[] = [];
  let ts = T0;
  let progress = -1;
  for (let s = 1; out.length < n; s++) {
    if (random() < 0.01) {
      progress = Math.max(progress, ts) + 5_000 + Math.floor(random() * R);
      ts = progress;
      out.push({ s, idle: progress });
      continue;
    }
    const jump = random();
    ts += jump < 0.05 ? Math.floor(random() * 3 * R) : Math.floor(random() * 60_000);
    const late = random() < 0.05 ? Math.floor(random() * R) : 0;
    const heavy = random() < 0.2;
    const u = heavy ? `h${Math.floor(random() * 4)}` : `u${Math.floor(random() * 300)}`;
    const i = `i${Math.floor(random() * random() * 400)}`;
    const movies = preset.name === "movies";
    const t = movies
      ? "rating"
      : (["view", "view", "view", "cart", "purchase"] as const)[Math.floor(random() * 5)]!;
    const rec: ParsedRecord = {
      id: `e${s}`,
      t: t === "rating" ? "view" : t,
      ts: ts - late,
      u,
      i,
      c: "",
      b: "",
      pr: -1,
      r: movies ? 1 + Math.floor(random() * 5) : -1,
      s,
      wb: progress,
    };
    if (movies && rec.r >= 4) rec.t = "purchase";
    progress = Math.max(progress, rec.ts);
    out.push(rec);
  }
  return out;
}

/** One instance fed everything in input order (the collaborative stage before it was partitioned). */
function reference(preset: SourcePreset, items: readonly Item[]) {
  const c = createCollaborative(preset, {});
  const points: { at: number; implicit: Ratings; explicit: Ratings }[] = [];
  let n = 0;
  let at = 0;
  let epoch = -1;
  let progress = -1;
  const due = (idle: boolean, to: number) => {
    const p = Math.max(progress, to);
    const e = p >= 0 ? Math.floor(p / R) : -1;
    const isDue = n > at && ((epoch >= 0 && e > epoch) || idle);
    progress = p;
    epoch = Math.max(epoch, e);
    if (isDue) {
      at = n;
      points.push({ at, implicit: c.implicitRatings(), explicit: c.explicitRatings() });
    }
  };
  for (const x of items) {
    if (isIdle(x)) {
      due(true, x.idle);
      continue;
    }
    due(false, x.wb);
    c.add(sourceEventOf(x, preset), x.s);
    n++;
    due(false, x.ts);
  }
  return points;
}

/**
 * The partitioned form (each partition's changes sent at its crossings to the trainer's copy of
 * its rows, the copies trained on): parse's batches of random sizes; each partition gets a hop with its
 * events and every idle marker of the batch, and a partition without either only now and then
 * (parse's throttled broadcast), then at the end; the partitions' hops taken in a random
 * interleaving; the trainer judging after every hop, gathering each due point's matrix then.
 */
function partitioned(preset: SourcePreset, items: readonly Item[], P: number, seed: number) {
  const random = rng(seed);
  // Each partition's rows (no marks) and the trainer's copy of them, fed its changes in chunks
  // (small ones here, so that rows and items are cut across several) at each crossing.
  const parts = Array.from({ length: P }, () => {
    const points: PartPoints = structuredClone(NO_POINTS);
    const stores = memRowsStores(false);
    const open = () =>
      createCollaborativeRows(preset, stores, { hold: false, changesSince: points.taken });
    let kept: Crossing[] | undefined;
    const copy = createRowsCopy(preset, memRowsStores(true), {
      get: () => kept,
      set: (list) => void (kept = list),
    });
    const part = {
      points,
      rows: open(),
      copy,
      // A restart: the rows over the same stores, what changed since the last crossing found
      // from their stamps.
      restart: () => void (part.rows = open()),
      crossings: partCrossings(points, R, (x) => {
        const changes = part.rows.takeChanges();
        points.taken = points.s;
        for (const kind of ["implicit", "explicit"] as const)
          for (const d of deltaChunks(changes[kind], 600)) copy.apply(kind, structuredClone(d));
        copy.cross(x);
      }),
      hops: [] as { items: Item[]; to: number }[],
    };
    return part;
  });
  // Parse's batches.
  let progress = -1;
  for (let x = 0; x < items.length;) {
    const size = 1 + Math.floor(random() * 40);
    const batch = items.slice(x, x + size);
    x += size;
    for (const it of batch)
      progress = Math.max(progress, isIdle(it) ? it.idle : (it as ParsedRecord).ts);
    for (let p = 0; p < P; p++) {
      const mine = batch.filter((it) => isIdle(it) || partitionOf(it.u, P) === p);
      if (mine.length > 0 || random() < 0.2) parts[p]!.hops.push({ items: mine, to: progress });
    }
  }
  for (const part of parts) part.hops.push({ items: [], to: progress });

  let t: TrainerPoints = NO_TRAINER;
  const got: { at: number; implicit: Ratings; explicit: Ratings }[] = [];
  const gather = (kind: "implicit" | "explicit", d: { e: number; i: number }) =>
    gatherRatings(
      parts.map((part) => {
        const cr = crossingAt(part.copy.crossings(), d)!;
        const b = part.copy.rows.of(kind);
        return { ratings: b.buildAt(cr.c)!, userFirst: b.userFirst, itemFirst: b.itemFirst };
      }),
    );
  const next = new Array<number>(P).fill(0);
  for (;;) {
    const open = parts.map((_, p) => p).filter((p) => next[p]! < parts[p]!.hops.length);
    if (open.length === 0) break;
    const p = open[Math.floor(random() * open.length)]!;
    const part = parts[p]!;
    const hop = part.hops[next[p]!++]!;
    if (random() < 0.05) part.restart();
    for (const it of hop.items) {
      if (isIdle(it)) {
        part.crossings.idle(it.idle);
        continue;
      }
      part.crossings.advance(it.wb);
      part.rows.add(sourceEventOf(it, preset), it.s);
      part.crossings.fed(it.s);
      part.crossings.advance(it.ts);
    }
    part.crossings.advance(hop.to);
    const judged = judge(
      t,
      parts.map((x) => x.copy.crossings()),
    );
    for (const d of judged.due)
      got.push({ at: d.at, implicit: gather("implicit", d), explicit: gather("explicit", d) });
    t = judged.t;
    const newest = judged.due[judged.due.length - 1];
    if (newest) t = { ...t, pending: { e: newest.e, i: newest.i, at: newest.at } };
    // As the trainer prunes: what a partition keeps is what the next points need.
    for (const x of parts) x.copy.keep(keepFrom(x.copy.crossings(), t));
  }
  const kept = Math.max(...parts.map((x) => x.copy.rows.of("implicit").marks().length));
  return { got, kept };
}

describe("the collaborative source per user partition", () => {
  for (const preset of [ECOMMERCE, MOVIES])
    it(`trains at one instance's points on its matrices, 1, 3 and 8 partitions, any batching (${preset.name})`, () => {
      const items = log(preset === MOVIES ? 7 : 3, preset, 2_000);
      const want = reference(preset, items);
      expect(want.length).toBeGreaterThan(20);
      expect(items.filter(isIdle).length).toBeGreaterThan(10);
      for (const P of [1, 3, 8])
        for (const seed of P === 8 ? [1, 2] : [1]) {
          const { got, kept } = partitioned(preset, items, P, seed * 31 + P);
          expect(got.map((g) => g.at)).toEqual(want.map((w) => w.at));
          for (let k = 0; k < want.length; k++) {
            expect(got[k]!.implicit).toEqual(want[k]!.implicit);
            expect(got[k]!.explicit).toEqual(want[k]!.explicit);
          }
          // Marks do not pile up: the pending point's and those not judged yet.
          expect(kept).toBeLessThan(10);
        }
    });
});
