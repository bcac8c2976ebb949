import { describe, expect, it } from "vitest";
import { Subject, asyncScheduler } from "rxjs";
import { createStageLogic, type InputBatch } from "../runtime/index.js";
import { trendingStage, type TrendingPart, type TrendingView } from "../actors/stages/index.js";
import { HOUR, MINUTE, type EventType, type ParsedRecord } from "../actors/contract/index.js";
import { stageContext } from "./helpers/stage.js";

/*
 * The newest windows' lists on each trigger are kept from the items counted since the list
 * before (not summed over every cell of the window): at every trigger, over random streams with
 * late records, ratings (half stars, and such as 0.9), repeated items and hours skipped, they
 * are the lists a full sum over the window's cells gives.
 */

const T0 = Date.UTC(2024, 0, 1);
const TYPES: EventType[] = ["view", "click", "cart", "purchase"];

function run(seed: number) {
  let x = seed;
  const rnd = () => (x = (x * 1103515245 + 12345) & 0x7fffffff) / 0x7fffffff;
  const settings = {
    partition: 0,
    oneHourOutOfOrdernessMs: 2 * HOUR,
    oneDayOutOfOrdernessMs: 26 * HOUR,
    weights: { view: 1, click: 2, cart: 3, purchase: 5, rating: 1 },
    topK: 5,
  };
  const { ctx } = stageContext(settings, asyncScheduler);
  const logic = createStageLogic(trendingStage, ctx);
  const view = logic.view as TrendingView;
  const input = new Subject<InputBatch<ParsedRecord>>();
  const emitted: TrendingPart[] = [];
  const expected: TrendingPart[] = [];
  logic.operator(input).subscribe((o) => {
    for (const p of (o as { parts?: TrendingPart[] }).parts ?? []) if (!p.final) emitted.push(p);
  });
  let seq = 0;
  let upTo = 0;
  let progress = -1;
  let now = T0;
  const items = 5 + Math.floor(rnd() * 40);
  const offRate = rnd() < 0.5;
  for (let b = 0; b < 400; b++) {
    const r = rnd();
    if (r < 0.25) {
      // A trigger: what the newest lists must be, summed over the cells now.
      const before = emitted.length;
      input.next({
        records: [],
        position: { from: upTo, upTo },
        progress: { from: progress, to: progress },
        trigger: "time",
      });
      for (const p of emitted.slice(before)) expected.push(view.part(p.kind, p.start));
      continue;
    }
    // Mostly minutes on, sometimes an hour or a day skipped.
    now += r < 0.3 ? 3 * HOUR : r < 0.32 ? 30 * HOUR : Math.floor(rnd() * 20 * MINUTE);
    const recs: ParsedRecord[] = [];
    const n = 1 + Math.floor(rnd() * 8);
    for (let k = 0; k < n; k++) {
      // Some records late (up to 28 h: some behind each kind's watermark).
      const ts = rnd() < 0.2 ? now - Math.floor(rnd() * 28 * HOUR) : now;
      // Half stars, and on some streams ratings such as 0.9, whose sums depend on their order.
      const y = rnd();
      const rating =
        y < 0.15 ? 0.5 * (1 + Math.floor(rnd() * 10)) : offRate && y < 0.3 ? 0.7 + 0.1 * k : -1;
      const item = `i${Math.floor(items * rnd() * rnd())}`;
      seq++;
      recs.push({
        id: `e${seq}`,
        t: rating > 0 ? "rating" : TYPES[Math.floor(rnd() * 4)]!,
        ts,
        u: "u",
        i: item,
        c: "",
        b: "",
        pr: -1,
        r: rating,
        s: seq,
        wb: progress,
      });
      progress = Math.max(progress, ts);
    }
    const from = upTo++;
    const before = recs[0]!.wb;
    input.next({
      records: recs,
      position: { from, upTo },
      progress: { from: before, to: progress },
    });
  }
  return { emitted, expected };
}

describe("trending's newest lists", () => {
  it("are at every trigger what a sum over the window's cells gives", () => {
    let lists = 0;
    for (let seed = 1; seed <= 60; seed++) {
      const { emitted, expected } = run(seed);
      expect(emitted, `seed ${seed}`).toEqual(expected);
      lists += emitted.length;
    }
    // The check saw lists of both kinds, not empty ones only.
    expect(lists).toBeGreaterThan(500);
  });
});
