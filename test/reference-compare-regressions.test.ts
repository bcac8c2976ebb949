import { describe, expect, it } from "vitest";
import { generateScenario, markerEvent, rng } from "./helpers/events.js";
import { reference, type RefEvent } from "./helpers/reference.js";
import {
  differences,
  expectedAnswers,
  expectedFinals,
  expectedLate,
  expectedPopularity,
  H,
  T0,
} from "./helpers/reference-scenario.js";
import {
  observeAnswers,
  observeKvFinals,
  observeLate,
  observePopularity,
  publish,
  readKv,
  settle,
  startTestApp,
} from "./helpers/reference-runs.js";
import { sleep } from "./helpers/harness.js";

/*
 * The pipeline bugs found by comparing the pipeline with the plain reference
 * (test/helpers/reference.ts), each as its own small comparison at 3 partitions: `it.fails`
 * while the bug is open, `it` once fixed (a regression test).
 */

/** A small log of a few hours for the bug tests (at 3 partitions). */
const smallScenario = (seed: number) =>
  generateScenario({
    seed,
    events: 400,
    users: 40,
    items: 30,
    categories: ["electronics", "books", "garden"],
    start: T0,
    spanMs: 6 * H,
    lateShare: 0.02,
    veryLateShare: 0.01,
    ancientShare: 0,
    boundaryShare: 0.01,
    duplicateShare: 0.03,
    prologue: { events: 0, ageMs: 0, spanMs: 0 },
    burst: { events: 20, gapMs: H, spanMs: 5 * 60_000, users: 1, items: 1 },
  });

describe("known pipeline bugs and regressions, each against the reference at 3 partitions", () => {
  // Regression (fixed in 9d689a4, parse tick()): parse told partitions without records that
  // progress moved only from handle(), at most every broadcastEveryMs (100 ms). When the last
  // events of a log moved progress within 100 ms of the previous broadcast, no later message came
  // to broadcast it: the idle partitions kept the older progress forever, their interest horizon
  // stopped, and the trending hub (minimum over the partitions' heartbeats) never finalised the
  // last windows. Here `x`, after a 300 ms pause, broadcasts; `last` comes 50 ms later, after
  // parse flushed that broadcast (every 10-30 ms) and within 100 ms of it.
  it("idle partitions learn the last progress of a log without a later event", async () => {
    const t = await startTestApp(3);
    try {
      const small = smallScenario(5);
      const r = rng(11);
      const x = markerEvent(r, "view", small.progress + 60_000, "x");
      const last = markerEvent(r, "view", small.progress + 60_000 + 30 * H, "last");
      const ref = reference([...small.log, x, last]);
      await publish(t.nc, small.log);
      await sleep(300);
      await publish(t.nc, [x]);
      await sleep(50);
      await publish(t.nc, [last]);
      const expected = { answers: expectedAnswers(ref), finals: expectedFinals(ref) };
      const users = Object.keys(expected.answers);
      const observe = async () => ({
        answers: await observeAnswers(t.client, users),
        finals: await observeKvFinals(t.nc),
      });
      const actual = await settle(observe, expected);
      expect(differences(expected.answers, actual.answers)).toEqual([]);
      expect(Object.keys(actual.finals)).toEqual(Object.keys(expected.finals));
      expect(differences(expected.finals, actual.finals)).toEqual([]);
      // Every partition's trending heartbeat reached the last progress.
      const beats = await readKv<{ wm: number }>(t.nc, "reco_trending");
      const wms = [...beats].filter(([k]) => k.startsWith("wm.")).map(([, v]) => v.wm);
      expect(wms).toEqual([ref.now, ref.now, ref.now]);
    } finally {
      await t.stop();
    }
  });

  // Regression (actors/stages/parse.ts remembered ids from `e.ts` while expiring before progress −
  // DEDUPE_HORIZON_MS): an event that arrived more than the dedupe horizon (26 h) behind
  // progress was forgotten at the next move of progress, so a repeat of it moments later was
  // accepted again. A purchase 26 h to 7 days late still counts as popular: it counts twice, and
  // reco.late holds it twice. DESIGN §2: duplicates (same id) are processed once.
  it("processes a repeated event once even when it arrived more than 26 h late", async () => {
    const t = await startTestApp(3);
    try {
      const small = smallScenario(7);
      const r = rng(13);
      const late: RefEvent = {
        ...markerEvent(r, "cart", small.progress - 30 * H, "late-buyer"),
        event_type: "purchase",
      };
      const mover = markerEvent(r, "view", small.progress + 60_000, "mover");
      const log = [...small.log, late, mover, { ...late }];
      const ref = reference(log);
      await publish(t.nc, log);
      const expected = { popularity: expectedPopularity(ref), late: expectedLate(ref) };
      const observe = async () => ({
        popularity: await observePopularity(t.nc),
        late: await observeLate(t.nc),
      });
      const actual = await settle(observe, expected);
      expect(actual.popularity.find((p) => p[0] === "late-buyer")).toEqual(
        expected.popularity.find((p) => p[0] === "late-buyer"),
      );
      expect(actual).toEqual(expected);
    } finally {
      await t.stop();
    }
  });

  // Regression (actors/stages/trending.ts, closeWindows() bounded the loop by `closedEnd - 48 * HOUR`):
  // when the 24 h windows' watermark moved more than 48 h in one step (a quiet night and a day, a
  // replay resumed later), the windows ending before closedEnd − 48 h were never finalised.
  it("finalises every 24 h window when event time jumps more than 48 h", async () => {
    const t = await startTestApp(3);
    try {
      const small = smallScenario(6);
      const r = rng(12);
      const jump = markerEvent(r, "view", small.progress + 80 * H, "jump");
      const ref = reference([...small.log, jump]);
      await publish(t.nc, small.log);
      await sleep(300);
      await publish(t.nc, [jump]);
      const expected = expectedFinals(ref);
      const actual = await settle(() => observeKvFinals(t.nc), expected);
      expect(Object.keys(actual)).toEqual(Object.keys(expected));
    } finally {
      await t.stop();
    }
  });
});
