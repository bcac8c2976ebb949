import { describe, expect, it } from "vitest";
import { Subject, asyncScheduler, type Subscription } from "rxjs";
import { createStageLogic, type InputBatch } from "../runtime/index.js";
import { topByScore, trendingStage, type TrendingPart } from "../actors/stages/index.js";
import {
  EVENT_TYPES,
  HOUR,
  MINUTE,
  type EventType,
  type ParsedRecord,
} from "../actors/contract/index.js";
import { createStageState } from "../state/store.js";
import { stageContext } from "./helpers/stage.js";
import {
  randomBatch,
  seededRandom,
  trendingSettings,
  type StreamAt,
} from "./helpers/trending-stream.js";

/*
 * The 24 h finals are kept as the windows slide an hour at a time (the hour gained added, the
 * hour lost taken away), not summed over every cell of the day. Over random streams of many
 * days, with late records, hours and days skipped, half-star ratings and ratings such as 3.7
 * (whose sums depend on their order), and the stage restarted on its state now and then, every
 * final is the list a reference gets by summing each window's cells, bit for bit.
 */

const T0 = Date.UTC(2024, 0, 1);
const DAY = 24 * HOUR;
const WEIGHTS = { view: 1, click: 2, cart: 3, purchase: 5, rating: 1 };
const TOP_K = 4;
const weightOf = EVENT_TYPES.map((t) => WEIGHTS[t as keyof typeof WEIGHTS] ?? 0);

/** The windows' cells as the stage keeps them, never dropped: hour -> item -> counts. */
function reference() {
  const hours = new Map<number, Map<string, number[]>>();
  return {
    count(h: number, item: string, type: number, n: number) {
      let m = hours.get(h);
      if (!m) hours.set(h, (m = new Map()));
      const next = [...(m.get(item) ?? [])];
      while (next.length <= type) next.push(0);
      next[type]! += n;
      m.set(item, next);
    },
    /** The list of the 24 h window at `start`: each item's cells summed hour by hour. */
    list(start: number) {
      const acc = new Map<string, number[]>();
      for (let h = start; h < start + DAY; h += HOUR)
        for (const [item, c] of hours.get(h) ?? []) {
          const a = acc.get(item);
          if (a) for (let t = 0; t < c.length; t++) a[t] = (a[t] ?? 0) + (c[t] ?? 0);
          else acc.set(item, [...c]);
        }
      return [...acc]
        .map(([i, c]) => {
          let score = 0;
          for (let t = 0; t < c.length; t++) score += (c[t] ?? 0) * (weightOf[t] ?? 0);
          return [i, score, c[0] ?? 0, c[1] ?? 0, c[2] ?? 0, c[3] ?? 0] as const;
        })
        .sort((a, b) => b[1] - a[1] || (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0))
        .slice(0, TOP_K);
    },
  };
}

function run(seed: number) {
  const rnd = seededRandom(seed);
  const settings = trendingSettings(WEIGHTS, TOP_K);
  const state = createStageState();
  const ref = reference();
  const finals: TrendingPart[] = [];
  const input = new Subject<InputBatch<ParsedRecord>>();
  let running: Subscription | undefined;
  /** The stage (again) on the same state: what it kept in memory only is gone. */
  const start = () => {
    running?.unsubscribe();
    const { ctx } = stageContext(settings, asyncScheduler, state);
    const logic = createStageLogic(trendingStage, ctx);
    running = logic.operator(input).subscribe((o) => {
      for (const p of (o as { parts?: TrendingPart[] }).parts ?? [])
        if (p.final && p.kind === "24h") finals.push(p);
    });
  };
  start();
  const offRate = rnd() < 0.5; // half the streams carry ratings that are not half stars
  const at: StreamAt = { seq: 0, upTo: 0, progress: -1 };
  let now = T0;
  const items = 5 + Math.floor(rnd() * 30);
  for (let b = 0; b < 600; b++) {
    if (rnd() < 0.03) start();
    const r = rnd();
    // Mostly minutes on, sometimes hours, now and then two days; some records late by up to
    // 30 h (some behind the 24 h windows' watermark).
    now += r < 0.2 ? 2 * HOUR : r < 0.22 ? 50 * HOUR : Math.floor(rnd() * 40 * MINUTE);
    const batch = randomBatch(rnd, at, now, { maxRecords: 6, lateByMs: 30 * HOUR, items, offRate });
    for (const e of batch.records)
      if (!(e.wb >= 0 && e.ts < e.wb - 26 * HOUR))
        ref.count(
          e.ts - (e.ts % HOUR),
          e.i,
          EVENT_TYPES.indexOf(e.t as EventType),
          e.r > 0 ? e.r : 1,
        );
    input.next(batch);
  }
  running?.unsubscribe();
  return { finals, ref, offRate };
}

describe("trending's 24 h finals", () => {
  it("are what a sum over each window's cells gives, across restarts", () => {
    let lists = 0;
    let withItems = 0;
    let offRated = 0;
    for (let seed = 1; seed <= 60; seed++) {
      const { finals, ref, offRate } = run(seed);
      for (const f of finals)
        expect(f.items, `seed ${seed}, window ${f.start}`).toEqual(ref.list(f.start));
      lists += finals.length;
      withItems += finals.filter((f) => f.items.length > 0).length;
      if (offRate) offRated++;
    }
    // The check saw many finals with items, on streams of both kinds.
    expect(withItems).toBeGreaterThan(1000);
    expect(lists).toBeGreaterThan(withItems);
    expect(offRated).toBeGreaterThan(10);
  });
});

describe("topByScore", () => {
  it("picks what sorting all and cutting gives, ties by key", () => {
    const rnd = seededRandom(7);
    for (let round = 0; round < 200; round++) {
      const n = Math.floor(rnd() * 60);
      const k = Math.floor(rnd() * 12);
      const entries: [string, number][] = Array.from({ length: n }, (_, i) => [
        `k${(i * 7919) % 101}-${i}`,
        Math.floor(rnd() * 5),
      ]);
      const sorted = entries
        .map(([key, v]): [string, number, number] => [key, v * 2, v])
        .sort((a, b) => b[1] - a[1] || (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0))
        .slice(0, k);
      expect(topByScore(entries, (v) => v * 2, k)).toEqual(sorted);
    }
  });
});
