import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { loadConfig } from "../bin/config.js";
import { startDriver, type Driver } from "../bin/pipeline/driver.js";
import { STREAMS } from "../connectors/nats/topology.js";
import {
  closer,
  countByReason,
  differences,
  expectedAnswers,
  expectedFinals,
  finalsFromKv,
  type TrendingPart,
  expectedLate,
  expectedPopularity,
  refA,
  refB,
  round,
  scenario,
  type Answers,
  type Finals,
  type PopRow,
} from "./helpers/reference-scenario.js";

/*
 * The reference comparison of test/reference-compare-partitions.test.ts, on the in-memory driver
 * (bin/pipeline/driver.ts): the same stages, wiring and stage host, without a server, in seconds.
 * Answers, popularity, closed trending windows and late events must equal the reference at 1, 3
 * and 8 partitions, as on NATS.
 */

const config = (partitions: number) =>
  loadConfig({
    PARTITIONS: String(partitions),
    TRENDING_TRIGGER: "100",
    RANKER: "design",
    IDLE_TIMEOUT_MS: "0",
    LOG_LEVEL: "silent",
  }).pipeline;

function observeAnswers(d: Driver, users: string[]): Answers {
  return Object.fromEntries(
    users.map((u) => {
      const res = d.recommend(u, 10);
      return [
        u,
        {
          items: res.items.map((i) => [
            i.itemId,
            round(i.score),
            i.source,
            i.purchases,
            i.category,
            i.brand,
            round(i.averagePrice),
          ]),
          top: res.topCategories.map((c) => [c.category, c.interest]),
        },
      ];
    }),
  );
}

const observePopularity = (d: Driver): PopRow[] =>
  d
    .popularity()
    .filter((r) => r.purchases > 0)
    .map((r): PopRow => [r.item, r.purchases, r.category, r.brand, round(r.avgPrice)])
    .sort((a, b) => (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0));

/** Final trending windows in the reco_trending bucket, merged over partitions (as on NATS). */
function observeKvFinals(d: Driver): Finals {
  return finalsFromKv(d.log.kv("reco_trending") as Iterable<[string, TrendingPart]>);
}

const dec = new TextDecoder();
const observeLate = (d: Driver): string[] =>
  d.log
    .messages(STREAMS.late)
    .map((m) => {
      const body = JSON.parse(dec.decode(m.data)) as { event: { id: string } };
      return `${m.headers["Reco-Reason"]} ${body.event.id} ${m.headers["Reco-Watermark"]}`;
    })
    .sort();

for (const partitions of [1, 3, 8]) {
  describe(`the reference scenario on the in-memory driver, ${partitions} partition(s)`, () => {
    let d: Driver;
    beforeAll(async () => {
      d = await startDriver(config(partitions));
    });
    afterAll(async () => {
      await d?.stop();
    });

    it("serves the reference's answers and popularity after the log", async () => {
      d.publish(scenario.log);
      await d.settled();
      const expected = expectedAnswers(refA);
      expect(differences(expected, observeAnswers(d, Object.keys(expected)))).toEqual([]);
      expect(observePopularity(d)).toEqual(expectedPopularity(refA));
    });

    it("serves the reference's answers once a closer moves event time about 48 h on", async () => {
      d.publish([closer]);
      await d.settled();
      const expected = expectedAnswers(refB);
      expect(differences(expected, observeAnswers(d, Object.keys(expected)))).toEqual([]);
      expect(observePopularity(d)).toEqual(expectedPopularity(refB));
    });

    it("leaves the reference's final list of every closed trending window in reco_trending", () => {
      const expected = expectedFinals(refB);
      const actual = observeKvFinals(d);
      expect(Object.keys(actual)).toEqual(Object.keys(expected));
      expect(differences(expected, actual)).toEqual([]);
    });

    it("keeps every late event in reco.late with its reason and watermark", () => {
      const expected = expectedLate(refB);
      const actual = observeLate(d);
      expect(countByReason(actual)).toEqual(countByReason(expected));
      expect(actual).toEqual(expected);
    });
  });
}
