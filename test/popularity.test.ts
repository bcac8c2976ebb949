import { describe, it, expect } from "vitest";
import { createStageState } from "../state/store.js";
import type { Envelope, InputMessage } from "../actors/host/index.js";
import type { ParsedRecord, EventType } from "../actors/contract/index.js";
import { heartbeatRow, type PopularityRow } from "../actors/stages/index.js";
import { POPULARITY_HEARTBEAT_KEY, createPopularityHandler } from "../actors/plan/index.js";
import type { LateRecord } from "../actors/stages/index.js";
import { kvKeyOf } from "../connectors/nats/topology.js";
import { DAY, HOUR, MINUTE } from "../actors/contract/index.js";
import { fakeOutput } from "./helpers/stage.js";

const enc = new TextEncoder();
/** An hour boundary. */
const T0 = Date.UTC(2024, 0, 1, 10, 0, 0);
const WEEK = 7 * DAY;

let seq = 0;
function ev(
  ts: number,
  i: string,
  t: EventType = "purchase",
  extra: Partial<ParsedRecord> = {},
): ParsedRecord {
  seq++;
  return {
    id: `id-${seq}`,
    t,
    ts,
    u: "u1",
    i,
    c: "",
    b: "",
    pr: -1,
    r: -1,
    s: seq,
    wb: -1,
    ...extra,
  };
}

const dec = new TextDecoder();

function setup(partition = 1) {
  const { out, rec } = fakeOutput();
  const late: [string, number][] = [];
  const paths: (string | undefined)[] = [];
  const h = createPopularityHandler(createStageState(), out, {
    partition,
    horizonMs: WEEK,
    counters: {
      late: (stage, n, path) => {
        late.push([stage, n]);
        paths.push(path);
      },
    },
  });
  let n = 0;
  /** Feeds one batch; returns the KV puts it made (partition 0 adds its heartbeat row). */
  const feed = (wm: number, recs: ParsedRecord[], lastUpTo = n): [string, PopularityRow][] => {
    const before = rec.kvPuts.length;
    n++;
    const env: Envelope<ParsedRecord> = { upTo: n, wm, recs };
    const msg: InputMessage = {
      seq: n,
      subject: "reco.items.0",
      data: enc.encode(JSON.stringify(env)),
      headers: {},
    };
    h.handle(msg, lastUpTo);
    return rec.kvPuts.slice(before).map(([bucket, key, value]) => {
      expect(bucket).toBe("reco_popularity");
      return [key, value as PopularityRow];
    });
  };
  return { h, rec, late, paths, feed };
}

describe("popularity", () => {
  it("should count purchases per item with average price, category and brand", () => {
    const { h, feed } = setup();
    const meta = { c: "electronics", b: "acme" };
    const puts = feed(T0 + 30 * MINUTE, [
      ev(T0 + 1 * MINUTE, "p1", "purchase", { ...meta, pr: 10 }),
      ev(T0 + 2 * MINUTE, "p1", "purchase", { pr: 20 }),
      ev(T0 + 3 * MINUTE, "p1", "purchase"), // no price: not in the average
      ev(T0 + 4 * MINUTE, "p2", "purchase", { c: "books", pr: 5 }),
    ]);
    const p1: PopularityRow = {
      item: "p1",
      purchases: 3,
      category: "electronics",
      brand: "acme",
      avgPrice: (10 + 20) / 2,
      wm: T0 + 30 * MINUTE,
    };
    expect(puts).toEqual([
      [kvKeyOf("p1"), p1],
      [
        kvKeyOf("p2"),
        {
          item: "p2",
          purchases: 1,
          category: "books",
          brand: "",
          avgPrice: 5,
          wm: T0 + 30 * MINUTE,
        },
      ],
    ]);
    expect(h.row("p1")).toEqual(p1);
  });

  it("should report avgPrice 0 when no purchase had a price", () => {
    const { feed } = setup();
    const [[, row]] = feed(T0, [ev(T0, "p1")]) as [[string, PopularityRow]];
    expect(row.avgPrice).toBe(0);
  });

  it("should key rows with kvKeyOf, also for ids that are not KV-safe", () => {
    const { feed } = setup();
    const puts = feed(T0, [ev(T0, "p1"), ev(T0, "sku/ü 9")]);
    expect(puts.map(([k]) => k)).toEqual([kvKeyOf("p1"), kvKeyOf("sku/ü 9")]);
    expect(kvKeyOf("sku/ü 9")).not.toBe("sku/ü 9");
  });

  it("should sum purchases across hourly buckets within 7 days", () => {
    const { h, feed } = setup();
    feed(T0 + 3 * DAY, [ev(T0, "p1"), ev(T0 + DAY, "p1"), ev(T0 + 3 * DAY, "p1")]);
    expect(h.row("p1")?.purchases).toBe(3);
  });

  it("should ignore events that are not purchases", () => {
    const { h, feed } = setup();
    const puts = feed(T0, [
      ev(T0, "p1", "view"),
      ev(T0, "p1", "click"),
      ev(T0, "p1", "cart"),
      ev(T0, "p1", "remove_from_cart"),
      ev(T0, "p1", "rating", { r: 5 }),
    ]);
    expect(puts).toEqual([]);
    expect(h.row("p1")).toBeUndefined();
  });

  it("should re-publish a lower count as hourly buckets leave the 7-day horizon", () => {
    const { h, feed } = setup();
    feed(T0 + 2 * HOUR, [ev(T0 + 10 * MINUTE, "p1"), ev(T0 + 2 * HOUR, "p1")]);
    expect(h.row("p1")?.purchases).toBe(2);
    // Bucket [T0, T0+1h) counts while its end T0+1h > progress − 7 d.
    expect(feed(T0 + HOUR + WEEK - 1, [])).toEqual([]);
    const first = feed(T0 + HOUR + WEEK, []);
    expect(first.map(([k, r]) => [k, r.purchases, r.wm])).toEqual([
      [kvKeyOf("p1"), 1, T0 + HOUR + WEEK],
    ]);
    // Bucket [T0+2h, T0+3h) leaves at progress T0+3h+7d: the row goes with purchases 0.
    const second = feed(T0 + 3 * HOUR + WEEK, []);
    expect(second.map(([k, r]) => [k, r.purchases])).toEqual([[kvKeyOf("p1"), 0]]);
    expect(h.row("p1")).toBeUndefined();
  });

  it("should not re-publish when progress moves without changing a row", () => {
    const { feed } = setup();
    feed(T0, [ev(T0, "p1")]);
    expect(feed(T0 + DAY, [])).toEqual([]);
  });

  it("should count a purchase older than the horizon as late and not in the table", () => {
    const { h, late, feed } = setup();
    const wb = T0 + 10 * DAY;
    const puts = feed(wb, [ev(wb - WEEK - 1, "p1", "purchase", { wb })]);
    expect(puts).toEqual([]);
    expect(h.row("p1")).toBeUndefined();
    expect(late).toEqual([["popularity", 1]]);
    // Just inside the horizon it counts.
    feed(wb, [ev(wb - WEEK, "p2", "purchase", { wb })]);
    expect(h.row("p2")?.purchases).toBe(1);
  });

  // Late events go to reco.late, none only to a counter.
  it("should send a purchase beyond the horizon to reco.late with its reason and watermark, counted by path", () => {
    const { rec, late, paths, feed } = setup();
    const wb = T0 + 10 * DAY;
    const old = ev(wb - WEEK - 1, "p1", "purchase", { wb });
    feed(wb, [
      old,
      ev(wb - WEEK, "p2", "purchase", { wb }),
      ev(wb - WEEK - 5, "p3", "view", { wb }),
    ]);
    expect(rec.raws).toHaveLength(1);
    const { subject, data, headers, msgId } = rec.raws[0]!;
    expect(subject).toBe("reco.late");
    expect(msgId).toBe(`late.popularity.popularity.${old.s}`);
    expect(headers).toEqual({
      "Reco-Reason": "behind_watermark:popularity",
      "Reco-Watermark": String(wb - WEEK),
      "Reco-Stage": "popularity",
    });
    expect(JSON.parse(dec.decode(data))).toEqual({
      stage: "popularity",
      reason: "behind_watermark:popularity",
      watermark: wb - WEEK,
      event: old,
    } satisfies LateRecord);
    expect(late).toEqual([["popularity", 1]]);
    expect(paths).toEqual(["popularity"]);
  });

  it("should put partition 0's progress in a heartbeat row of no item and no purchases, when it moves", () => {
    const { rec, feed } = setup(0);
    const heartbeats = () =>
      rec.kvPuts.filter(([, key]) => key === POPULARITY_HEARTBEAT_KEY).map(([, , v]) => v);
    feed(T0, [ev(T0, "p1")]);
    feed(T0, []);
    feed(T0 + HOUR, []);
    feed(T0 + 30 * MINUTE, []);
    expect(heartbeats()).toEqual([heartbeatRow(T0), heartbeatRow(T0 + HOUR)]);
    expect(heartbeatRow(T0)).toEqual({
      item: "",
      purchases: 0,
      category: "",
      brand: "",
      avgPrice: 0,
      wm: T0,
    });
    // Other partitions do not repeat it.
    const other = setup(1);
    other.feed(T0, [ev(T0, "p1")]);
    expect(other.rec.kvPuts.map(([, key]) => key)).toEqual([kvKeyOf("p1")]);
  });

  it("should skip records with s <= lastUpTo", () => {
    const { h, feed } = setup();
    const a = ev(T0, "p1");
    const b = ev(T0, "p1");
    feed(T0, [a, b], a.s);
    expect(h.row("p1")?.purchases).toBe(1);
  });

  it("should pass progress on from the envelope", () => {
    const { rec, feed } = setup();
    feed(T0, []);
    feed(T0 - 1, []);
    expect(rec.progress).toEqual([T0, T0]);
  });
});
