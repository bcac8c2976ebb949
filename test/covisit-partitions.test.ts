import { describe, expect, it } from "vitest";
import {
  createCovisit,
  createItemIds,
  createPopular,
  ECOMMERCE,
  memCovisitStores,
  PARTITION_KEEP,
  partitionCovisit,
  readCovisit,
  readItemCounters,
  seededRandom,
  type CovisitOptions,
  type SourceEvent,
} from "../actors/sources/index.js";
import { partitionOf } from "../actors/contract/index.js";

/*
 * Co-visitation and the item counters per user partition, read together (covisit-read.ts,
 * item-counter-read.ts): what the engine's per-partition covisit stages serve.
 */

const T0 = Date.UTC(2026, 10, 1);
const MIN = 60_000;
const TYPES: SourceEvent["t"][] = ["view", "view", "view", "click", "cart", "purchase"];

/** A log of `n` events: 60 users, 80 items, sessions of nearby events per user. */
function log(n: number, seed: number): SourceEvent[] {
  const rnd = seededRandom(seed);
  return Array.from({ length: n }, (_, s) => ({
    u: `u${Math.floor(rnd() * 60)}`,
    i: `i${Math.floor(Math.pow(rnd(), 2) * 80)}`,
    t: TYPES[Math.floor(rnd() * TYPES.length)]!,
    ts: T0 + s * MIN,
    c: "",
    r: -1,
  }));
}

/** `p` partitions' co-visitation fed `events` in the given order, read together. */
function partitioned(opts: CovisitOptions, p: number, events: readonly SourceEvent[]) {
  const ids = createItemIds();
  const parts = Array.from({ length: p }, () =>
    createCovisit(
      { ...opts, ...partitionCovisit({ k: opts.k }, p) },
      { ...memCovisitStores(), ids },
    ),
  );
  for (const e of events) parts[partitionOf(e.u, p)]!.add(e);
  return readCovisit(
    opts,
    parts.map((c) => c.part),
  );
}

const items = Array.from({ length: 80 }, (_, x) => `i${x}`);
const ranked = (r: { item: string; score: number }[]) => r.map((x) => [x.item, x.score]);

describe("co-visitation per user partition, read together", () => {
  const opts: CovisitOptions = { preset: ECOMMERCE, halfLifeMs: 3 * 86_400_000, k: 200 };
  const events = log(3000, 5);
  const end = events.at(-1)!.ts;

  it("scores as one instance fed every event (to float rounding) while no list is pruned", () => {
    const one = createCovisit(opts);
    for (const e of events) one.add(e);
    const four = partitioned(opts, 4, events);
    let compared = 0;
    for (const item of items) {
      const a = one.similar(item, end, 20);
      const b = four.similar(item, end, 20);
      expect(b.map((x) => x.item)).toEqual(a.map((x) => x.item));
      b.forEach((x, n) => expect(x.score).toBeCloseTo(a[n]!.score, 12));
      compared += a.length;
    }
    expect(compared).toBeGreaterThan(500);
  });

  it("answers the same bits whatever order the partitions' events interleaved in", () => {
    const mine = (p: number) => events.filter((e) => partitionOf(e.u, 4) === p);
    // Partition by partition instead of in log order: each partition's own order is kept.
    const reordered = [3, 1, 0, 2].flatMap(mine);
    const a = partitioned(opts, 4, events);
    const b = partitioned(opts, 4, reordered);
    const seeds = [
      { item: "i1", score: 2, why: "" },
      { item: "i7", score: 1, why: "" },
    ];
    for (const item of items)
      expect(ranked(b.similar(item, end))).toEqual(ranked(a.similar(item, end)));
    expect(ranked(b.candidates(seeds, end))).toEqual(ranked(a.candidates(seeds, end)));
  });

  it("keeps a pair strong over all users that is weak in every partition's share", () => {
    // "hub" is viewed with "mate" by 16 users, spread over 4 partitions (4 each), and with 30
    // other items by 5 users each, all in one partition: in that partition each of those pairs
    // outweighs hub–mate there; summed, hub–mate (16) is the strongest.
    const k = 5;
    const o: CovisitOptions = { preset: ECOMMERCE, normalise: false, halfLifeMs: Infinity, k };
    const users = (p: number, n: number, tag: string) => {
      const out: string[] = [];
      for (let x = 0; out.length < n; x++)
        if (partitionOf(`${tag}${x}`, 4) === p) out.push(`${tag}${x}`);
      return out;
    };
    const ev: SourceEvent[] = [];
    const pair = (u: string, a: string, b: string) =>
      ev.push(
        { u, i: a, t: "view", ts: T0, c: "", r: -1 },
        { u, i: b, t: "view", ts: T0, c: "", r: -1 },
      );
    for (let p = 0; p < 4; p++) {
      for (const u of users(p, 4, "m")) pair(u, "hub", "mate");
      for (let x = 0; x < 30; x++)
        for (const u of users(p, 5, `o${p}-${x}-`)) pair(u, "hub", `other${p}-${x}`);
    }
    // Pruned to k per partition (before partitionCovisit): the pair is dropped in each one.
    const ids = createItemIds();
    const narrow = Array.from({ length: 4 }, () =>
      createCovisit(o, { ...memCovisitStores(), ids }),
    );
    for (const e of ev) narrow[partitionOf(e.u, 4)]!.add(e);
    const lost = readCovisit(
      o,
      narrow.map((c) => c.part),
    ).similar("hub", T0, k);
    expect(lost.map((x) => x.item)).not.toContain("mate");
    // Kept PARTITION_KEEP·k per partition, it is summed and comes first.
    expect(PARTITION_KEEP).toBeGreaterThan(1);
    const kept = partitioned(o, 4, ev).similar("hub", T0, k);
    expect(kept[0]).toMatchObject({ item: "mate", score: 16 });
  });
});

describe("item counters per user partition, read together", () => {
  it("rank every item by its summed count, as one counter fed every event does", () => {
    const events = log(4000, 9);
    const one = createPopular(ECOMMERCE.isTarget, 86_400_000);
    const parts = Array.from({ length: 3 }, () => createPopular(ECOMMERCE.isTarget, 86_400_000));
    for (const e of events) {
      one.add(e);
      parts[partitionOf(e.u, 3)]!.add(e);
    }
    const read = readItemCounters(parts);
    const now = events.at(-1)!.ts;
    for (const n of [1, 5, 20]) {
      const a = one.top(now, n);
      const b = read.top(now, n);
      expect(b.map((x) => x.item)).toEqual(a.map((x) => x.item));
      b.forEach((x, m) => expect(x.score).toBeCloseTo(a[m]!.score, 9));
    }
    for (const item of items) expect(read.score(item, now)).toBeCloseTo(one.score(item, now), 9);
  });
});
