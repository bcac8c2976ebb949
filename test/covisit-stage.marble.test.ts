import { describe, expect, it } from "vitest";
import {
  ECOMMERCE,
  MOVIES,
  defaultSourceSettings,
  createCovisit,
  createPopular,
  createTrending,
  seededRandom,
  type SourcePreset,
} from "../actors/sources/index.js";
import { partitionOf, type EventType, type ParsedRecord } from "../actors/contract/index.js";
import type { PairsTo } from "../actors/stages/index.js";
import { of } from "rxjs";
import { recordMaker, reloaded, sourceStages } from "./helpers/source-stages.js";

const T0 = Date.UTC(2026, 10, 1);
const M = 60_000;
const sourcesOf = (preset: SourcePreset, k = 2) => ({
  ...defaultSourceSettings(preset),
  covisit: { ...defaultSourceSettings(preset).covisit, k },
});
const sources = sourcesOf(ECOMMERCE);

describe("covisit stage", () => {
  it("pairs items touched together and counts trending and popular items", () => {
    const s = sourceStages({ partitions: 1, preset: ECOMMERCE, sources });
    const rec = recordMaker();
    s.feed([
      rec("u1", "p1", T0, "view", "electronics"),
      rec("u1", "p2", T0 + M),
      rec("u2", "p1", T0 + 2 * M),
    ]);
    s.feed([rec("u2", "p2", T0 + 3 * M, "purchase"), rec("u3", "p9", T0 + 3 * M)]);
    // Progress moves on without records (an idle marker): the clock of answers follows.
    s.feed([], { wm: T0 + 9 * M });
    const v = s.view();
    const now = T0 + 9 * M;
    expect(
      v
        .covisit()
        .similar("p1", now, 5)
        .map((x) => x.item),
    ).toEqual(["p2"]);
    expect(v.covisit().similar("p9", now, 5)).toEqual([]);
    expect(
      v
        .popular()
        .top(now, 5)
        .map((x) => x.item),
    ).toEqual(["p2"]);
    expect(
      v
        .trending()
        .top(now, 1)
        .map((x) => x.item),
    ).toEqual(["p1"]);
    expect(v.categoryOf("p1")).toBe("electronics");
    expect(v.progress()).toBe(now);
    expect(v.fed()).toBe(5);
  });

  it("keeps at most 3K neighbours per item and answers from a restored snapshot as live", () => {
    const s = sourceStages({ partitions: 1, preset: ECOMMERCE, sources });
    const rec = recordMaker();
    // One user touches p0 then 10 others within the hour: p0 gets 10 candidate neighbours.
    const recs = [rec("u1", "p0", T0)];
    for (let x = 1; x <= 10; x++) recs.push(rec(`u${x % 3}`, `p${x}`, T0 + x * M));
    for (let x = 1; x <= 10; x++) recs.push(rec("u1", `p${x}`, T0 + (10 + x) * M));
    s.feed(recs);
    const ref = createCovisit({ preset: ECOMMERCE, ...sources.covisit });
    for (const r of recs) ref.add({ u: r.u, i: r.i, t: r.t, ts: r.ts, c: r.c, r: r.r });
    const now = T0 + 30 * M;
    const live = s.view().covisit();
    expect(live.similar("p0", now, 100)).toEqual(ref.similar("p0", now, 100));
    for (let x = 0; x <= 10; x++)
      expect(live.similar(`p${x}`, now, 100).length).toBeLessThan(3 * sources.covisit.k);
    const states = new Map([...s.history, ...s.covisit].map((x) => [x.id, x.state]));
    const again = () =>
      sourceStages({
        partitions: 1,
        preset: ECOMMERCE,
        sources,
        state: (id) => reloaded(states.get(id)!),
      });
    const restored = again();
    for (let x = 0; x <= 10; x++)
      expect(restored.view().covisit().similar(`p${x}`, now, 100)).toEqual(
        live.similar(`p${x}`, now, 100),
      );
    // And it goes on from there as the live one does (the users' recent items restored too).
    const more = [rec("u1", "p0", T0 + 31 * M), rec("u1", "p5", T0 + 32 * M)];
    s.feed(more);
    restored.feed(more);
    const later = T0 + 40 * M;
    expect(restored.view().covisit().similar("p0", later, 100)).toEqual(
      live.similar("p0", later, 100),
    );
  });
});

/** Random events: sessions of a few users over a catalogue with a long tail, some late. */
function events(preset: SourcePreset, seed: number, n: number): ParsedRecord[] {
  const rand = seededRandom(seed);
  const rec = recordMaker();
  const types: EventType[] =
    preset === MOVIES ? ["purchase"] : ["view", "view", "view", "click", "cart", "purchase"];
  const out: ParsedRecord[] = [];
  let ts = T0;
  for (let x = 0; x < n; x++) {
    ts += Math.floor(rand() * 40_000);
    const t = types[Math.floor(rand() * types.length)]!;
    const r = rec(
      `u${Math.floor(rand() * 120)}`,
      `i${Math.floor(Math.pow(rand(), 2) * 600)}`,
      rand() < 0.1 ? ts - Math.floor(rand() * 3_000_000) : ts,
      t,
      `c${Math.floor(rand() * 7)}`,
    );
    out.push({
      ...r,
      r: preset === MOVIES ? 1 + Math.floor(rand() * 5) : -1,
      pr: rand() < 0.5 ? Math.floor(rand() * 1000) / 10 : -1,
    });
  }
  return out;
}

describe("co-visitation and the item counters over item partitions", () => {
  it("give one instance's lists, scores, categories and prices, bit for bit, whatever the partitions and batches", () => {
    for (const preset of [ECOMMERCE, MOVIES]) {
      const src = sourcesOf(preset, 5);
      const log = events(preset, preset === MOVIES ? 7 : 3, 4000);
      // The reference: one instance of each source fed every event in order.
      const covisit = createCovisit({ preset, ...src.covisit });
      const trending = createTrending({
        halfLifeMs: src.trending.halfLifeMs,
        all: src.trending.all,
      });
      const popular = createPopular(preset.isTarget, src.popularHalfLifeMs);
      const runs = [
        { partitions: 1, batches: 1, cut: 500 },
        { partitions: 3, batches: 4, cut: 170 },
        { partitions: 8, batches: 2, cut: 999 },
      ].map((r) => ({ ...r, s: sourceStages({ partitions: r.partitions, preset, sources: src }) }));
      for (const r of runs)
        for (let x = 0; x < log.length; x += r.cut)
          r.s.feed(log.slice(x, x + r.cut), { batches: r.batches });
      for (const r of log) {
        const e = { u: r.u, i: r.i, t: r.t, ts: r.ts, c: r.c, r: r.r };
        const ev = preset === MOVIES ? { ...e, t: "rating" as const } : e;
        covisit.add(ev);
        trending.add(ev);
        popular.add(ev);
      }
      const now = Math.max(...log.map((r) => r.ts)) + 60_000;
      const [one, ...others] = runs.map((r) => r.s.view());
      for (let i = 0; i < 600; i++) {
        const item = `i${i}`;
        const want = JSON.stringify(covisit.similar(item, now, 50));
        for (const v of [one!, ...others]) {
          expect(JSON.stringify(v.covisit().similar(item, now, 50))).toBe(want);
          expect(v.categoryOf(item)).toBe(one!.categoryOf(item));
          expect(v.priceOf(item)).toBe(one!.priceOf(item));
        }
      }
      // A user's candidates from their seeds, read across partitions.
      const seeds = ["i1", "i5", "i40", "i300"].map((item, k) => ({ item, score: 4 - k, why: "" }));
      const cand = JSON.stringify(covisit.candidates(seeds, now, 30));
      for (const v of others)
        expect(JSON.stringify(v.covisit().candidates(seeds, now, 30))).toBe(cand);
      for (const v of others) {
        for (const n of [5, 100, 1000]) {
          expect(JSON.stringify(v.trending().top(now, n))).toBe(
            JSON.stringify(one!.trending().top(now, n)),
          );
          expect(JSON.stringify(v.popular().top(now, n))).toBe(
            JSON.stringify(one!.popular().top(now, n)),
          );
        }
        expect(v.progress()).toBe(one!.progress());
        expect(v.fed()).toBe(log.length);
      }
      // The counters hold what one counter holds: the same items in the same order.
      expect(
        one!
          .trending()
          .top(now, 50)
          .map((x) => x.item),
      ).toEqual(trending.top(now, 50).map((x) => x.item));
      expect(
        one!
          .popular()
          .top(now, 50)
          .map((x) => x.item),
      ).toEqual(popular.top(now, 50).map((x) => x.item));
    }
  });
});

describe("a history stage's pairs", () => {
  it("end every batch with a mark to every item partition: how far they are complete, and event time", () => {
    const s = sourceStages({ partitions: 2, preset: ECOMMERCE, sources });
    const outs: PairsTo[] = [];
    const run = (b: object) =>
      of(b)
        .pipe(s.history[0]!.logic.operator as never)
        .subscribe((o) => outs.push(...((o as { pairs?: PairsTo[] }).pairs ?? [])));
    const rec = recordMaker();
    // One event: its record goes to its item's partition only; both hear the mark.
    run({
      records: [rec("u1", "i1", T0)],
      position: { from: 0, upTo: 5 },
      progress: { from: -1, to: T0 },
    });
    const marks = (from: number) =>
      outs.slice(from).flatMap((x) => (x.rec.p === undefined ? [] : [[x.q, x.rec.s, x.rec.p]]));
    expect(outs.filter((x) => x.rec.p === undefined).map((x) => x.q)).toEqual([
      partitionOf("i1", 2),
    ]);
    expect(marks(0)).toEqual([
      [0, 5, T0],
      [1, 5, T0],
    ]);
    expect(outs.at(-1)!.rec.p).toBe(T0); // after the event's record
    // A batch without records (parse's progress broadcast): event time moves on everywhere.
    const before = outs.length;
    run({ records: [], position: { from: 5, upTo: 9 }, progress: { from: T0, to: T0 + M } });
    expect(marks(before)).toEqual([
      [0, 9, T0 + M],
      [1, 9, T0 + M],
    ]);
  });
});
