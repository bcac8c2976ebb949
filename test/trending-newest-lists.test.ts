import { describe, expect, it } from "vitest";
import { Subject, asyncScheduler } from "rxjs";
import { createStageLogic, type InputBatch } from "../runtime/index.js";
import { trendingStage, type TrendingPart, type TrendingView } from "../actors/stages/index.js";
import { HOUR, MINUTE, type ParsedRecord } from "../actors/contract/index.js";
import { stageContext } from "./helpers/stage.js";
import {
  randomBatch,
  seededRandom,
  trendingSettings,
  type StreamAt,
} from "./helpers/trending-stream.js";

/*
 * The newest windows' lists on each trigger are kept from the items counted since the list
 * before (not summed over every cell of the window): at every trigger, over random streams with
 * late records, ratings (half stars, and such as 0.9), repeated items and hours skipped, they
 * are the lists a full sum over the window's cells gives.
 */

const T0 = Date.UTC(2024, 0, 1);

function run(seed: number) {
  const rnd = seededRandom(seed);
  const settings = trendingSettings({ view: 1, click: 2, cart: 3, purchase: 5, rating: 1 }, 5);
  const { ctx } = stageContext(settings, asyncScheduler);
  const logic = createStageLogic(trendingStage, ctx);
  const view = logic.view as TrendingView;
  const input = new Subject<InputBatch<ParsedRecord>>();
  const emitted: TrendingPart[] = [];
  const expected: TrendingPart[] = [];
  logic.operator(input).subscribe((o) => {
    for (const p of (o as { parts?: TrendingPart[] }).parts ?? []) if (!p.final) emitted.push(p);
  });
  const at: StreamAt = { seq: 0, upTo: 0, progress: -1 };
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
        position: { from: at.upTo, upTo: at.upTo },
        progress: { from: at.progress, to: at.progress },
        trigger: "time",
      });
      for (const p of emitted.slice(before)) expected.push(view.part(p.kind, p.start));
      continue;
    }
    // Mostly minutes on, sometimes an hour or a day skipped; some records late by up to 28 h
    // (some behind each kind's watermark).
    now += r < 0.3 ? 3 * HOUR : r < 0.32 ? 30 * HOUR : Math.floor(rnd() * 20 * MINUTE);
    input.next(randomBatch(rnd, at, now, { maxRecords: 8, lateByMs: 28 * HOUR, items, offRate }));
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
