import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { RefTrendingKind } from "./helpers/reference.js";
import type { RecoClient, TrendingStream } from "../connectors/grpc/index.js";
import { TrendingWindow } from "../proto/gen/reco/v1/reco_pb.js";
import {
  closer,
  countByReason,
  differences,
  expectedAnswers,
  expectedFinals,
  expectedLate,
  expectedPopularity,
  refA,
  refB,
  scenario,
  sortKeys,
  type Answers,
  type Finals,
  type PopRow,
} from "./helpers/reference-scenario.js";
import {
  observeAnswers,
  observeKvFinals,
  observeLate,
  observePopularity,
  publish,
  settle,
  settleWith,
  startTestApp,
  type TestApp,
} from "./helpers/reference-runs.js";
import { sleep } from "./helpers/harness.js";

/*
 * The streaming pipeline against the plain reference (test/helpers/
 * reference.ts) on one seeded log, at 1, 3 and 8 partitions. Every user's recommendations (items,
 * scores, sources, popularity columns) and top categories, the popularity table, every closed
 * trending window (from the KV bucket and from StreamTrending) and every message of reco.late
 * must equal the reference, and so be identical at every partition count.
 *
 * Two phases on one app per partition count:
 * A. the log (two days with disorder, late and very late events, duplicates, a burst after a
 *    quiet gap that leaves most partitions without records): the 24 h interest horizon and the
 *    7-day popularity horizon both cut into it;
 * B. a closer about 48 h of event time later: every 1 h window and most 24 h windows close, part
 *    of the prologue's purchases leave the popularity horizon, interest empties.
 *
 * "across partition counts" compares the runs that the describes before it recorded in `runs`:
 * they stay in one file, in this order.
 */

const PARTITION_COUNTS = [1, 3, 8];
/**
 * Each partition count with every stage behind its own subject, and 3 partitions with the user
 * path chained (CHAINING=on, DESIGN §3): the same answers either way.
 */
const RUNS = [
  ...PARTITION_COUNTS.map((partitions) => ({ partitions, chaining: "off" })),
  { partitions: 3, chaining: "on" },
];
const runName = (r: { partitions: number; chaining: string }) =>
  `${r.partitions} partition${r.partitions > 1 ? "s" : ""}${r.chaining === "on" ? ", chained" : ""}`;

const pick = <T>(o: Record<string, T>, keys: string[]): Record<string, T> =>
  Object.fromEntries(keys.map((k) => [k, o[k]!]));

interface Run {
  answersA: Answers;
  popularityA: PopRow[];
  answersB: Answers;
  popularityB: PopRow[];
  kvFinals: Finals;
  late: string[];
}
const runs = new Map<string, Run>();

/**
 * Final updates of one StreamTrending call, by "<kind>.<start>"; repeats are counted. A heartbeat
 * (an idle call's newest list again, every 10 s, `final` as that list's) is a re-send, not a
 * delivery: it is left out, so a slow run with a quiet stream after a final does not count it twice.
 */
function collectFinals(client: RecoClient, window: TrendingWindow, kind: RefTrendingKind) {
  const finals: Finals = {};
  let repeated = 0;
  const stream: TrendingStream = client.streamTrending(window, 100);
  const done = (async () => {
    for await (const u of stream) {
      if (!u.final || u.heartbeat) continue;
      const key = `${kind}.${Number(u.windowStart?.seconds ?? 0n) * 1000}`;
      if (key in finals) repeated++;
      finals[key] = u.items.map((i) => [i.itemId, i.score, Number(i.views), Number(i.clicks)]);
    }
  })().catch(() => undefined);
  return { finals, repeated: () => repeated, stop: () => (stream.cancel(), done) };
}

for (const mode of RUNS) {
  const { partitions } = mode;
  describe(`at ${runName(mode)}`, () => {
    let t: TestApp;
    let hour: ReturnType<typeof collectFinals>;
    let day: ReturnType<typeof collectFinals>;
    const run: Partial<Run> = {};

    beforeAll(async () => {
      t = await startTestApp(partitions, { CHAINING: mode.chaining });
      hour = collectFinals(t.client, TrendingWindow.ONE_HOUR, "1h");
      day = collectFinals(t.client, TrendingWindow.ONE_DAY, "24h");
      await sleep(200); // both streams are subscribed before the first event
    });
    afterAll(async () => {
      await hour?.stop();
      await day?.stop();
      await t?.stop();
    });

    it("serves the reference's recommendations and top categories to every user after the log", async () => {
      await publish(t.nc, scenario.log);
      const expected = expectedAnswers(refA);
      const users = Object.keys(expected);
      const actual = await settle(() => observeAnswers(t.client, users), expected);
      expect(differences(expected, actual)).toEqual([]);
      run.answersA = actual;
      const popularity = await settle(() => observePopularity(t.nc), expectedPopularity(refA));
      expect(popularity).toEqual(expectedPopularity(refA));
      run.popularityA = popularity;
    });

    it("serves the reference's answers once a closer moves event time about 48 h on", async () => {
      await publish(t.nc, [closer]);
      const expected = expectedAnswers(refB);
      const users = Object.keys(expected);
      const actual = await settle(() => observeAnswers(t.client, users), expected);
      expect(differences(expected, actual)).toEqual([]);
      run.answersB = actual;
      const popularity = await settle(() => observePopularity(t.nc), expectedPopularity(refB));
      expect(popularity).toEqual(expectedPopularity(refB));
      run.popularityB = popularity;
    });

    it("leaves the reference's final list of every closed trending window in reco_trending", async () => {
      const expected = expectedFinals(refB);
      const actual = await settle(() => observeKvFinals(t.nc), expected);
      expect(Object.keys(actual)).toEqual(Object.keys(expected));
      expect(differences(expected, actual)).toEqual([]);
      run.kvFinals = actual;
    });

    it("keeps every late event in reco.late with its reason and watermark", async () => {
      const expected = expectedLate(refB);
      const actual = await settle(() => observeLate(t.nc), expected);
      expect(countByReason(actual)).toEqual(countByReason(expected));
      expect(actual).toEqual(expected);
      run.late = actual;
      runs.set(runName(mode), run as Run);
    });

    it("streams, for every window it finalises, the reference's final list, once", async () => {
      const expected = expectedFinals(refB);
      const keys = Object.keys(expected);
      // The newest window of each kind closes in the closer's step: it is never dropped (below).
      const newest = ["1h.", "24h."].map((kind) => keys.filter((k) => k.startsWith(kind)).pop()!);
      const observe = async () => sortKeys({ ...hour.finals, ...day.finals });
      const actual = await settleWith(observe, (a) => newest.every((k) => k in a), 5_000);
      expect(newest.filter((k) => !(k in actual))).toEqual([]);
      // Every final the stream delivered is right, and none came twice.
      expect(differences(pick(expected, Object.keys(actual)), actual)).toEqual([]);
      expect(hour.repeated() + day.repeated()).toBe(0);
    });

    // Regression (connectors/grpc/server.ts, createTrendingWriter kept at most 4 pending finals):
    // one watermark step that closed more windows than grpc-js's write buffer (16 messages) plus
    // 4 dropped the oldest finals for a subscriber that reads at once. The closer closes 48 of
    // the 24 h windows in one step: 16 were written, 28 dropped, the last 4 kept.
    it("streams a final update for every closed window, however many close at once", async () => {
      const expected = expectedFinals(refB);
      const observe = async () => sortKeys({ ...hour.finals, ...day.finals });
      // The test above waited for the newest finals, which close in the same step.
      const actual = await settle(observe, expected, 1_000);
      expect(Object.keys(actual)).toEqual(Object.keys(expected));
    });
  });
}

describe("across partition counts", () => {
  it("gives identical results at 1, 3 and 8 partitions, and chained at 3", () => {
    expect([...runs.keys()]).toEqual(RUNS.map(runName));
    const [first, ...rest] = [...runs.values()];
    for (const r of rest) expect(r).toEqual(first);
  });
});
