import { describe, it, expect } from "vitest";
import { createStageState } from "../state/store.js";
import type { Envelope, InputMessage } from "../actors/host/index.js";
import type { ParsedRecord, EventType } from "../actors/contract/index.js";
import type { LateRecord } from "../actors/stages/index.js";
import type { TrendingOptions, TrendingPart } from "../actors/stages/index.js";
import { createTrendingHandler } from "../actors/plan/index.js";
import { DAY, HOUR, MINUTE } from "../actors/contract/index.js";
import { fakeOutput } from "./helpers/stage.js";

const enc = new TextEncoder();
const dec = new TextDecoder();
/** An hour boundary. */
const T0 = Date.UTC(2024, 0, 1, 0, 0, 0);
const Q = 5;

let seq = 0;
function ev(ts: number, i: string, t: EventType = "view", wb = -1): ParsedRecord {
  seq++;
  return { id: `id-${seq}`, t, ts, u: "u1", i, c: "", b: "", pr: -1, r: -1, s: seq, wb };
}

function setup(opts: Partial<TrendingOptions> = {}) {
  const { out, rec } = fakeOutput();
  const late: [string, number][] = [];
  const lateByPath: Record<string, number> = {};
  const h = createTrendingHandler(createStageState(), out, {
    partition: Q,
    oneHourOutOfOrdernessMs: 2 * HOUR,
    oneDayOutOfOrdernessMs: 26 * HOUR,
    weights: { view: 1, click: 2 },
    topK: 10,
    counters: {
      late: (stage, n, path = "?") => {
        late.push([stage, n]);
        lateByPath[path] = (lateByPath[path] ?? 0) + n;
      },
    },
    ...opts,
  });
  let n = 0;
  /** Feeds one batch; returns the KV puts it made. */
  const feed = (wm: number, recs: ParsedRecord[], lastUpTo = n): [string, TrendingPart][] => {
    const before = rec.kvPuts.length;
    n++;
    const env: Envelope<ParsedRecord> = { upTo: n, wm, recs };
    const msg: InputMessage = {
      seq: n,
      subject: `reco.items.${Q}`,
      data: enc.encode(JSON.stringify(env)),
      headers: {},
    };
    h.handle(msg, lastUpTo);
    return puts(before);
  };
  const puts = (from: number): [string, TrendingPart][] =>
    rec.kvPuts.slice(from).map(([bucket, key, value]) => {
      expect(bucket).toBe("reco_trending");
      return [key, value as TrendingPart];
    });
  const tick = () => {
    const before = rec.kvPuts.length;
    h.tick();
    return rec.kvPuts.slice(before).map(([, k, v]) => [k, v] as [string, unknown]);
  };
  return { h, rec, late, lateByPath, feed, tick };
}

describe("trending", () => {
  it("should count views and clicks per item in 1 h tumbling windows, score = views + 2 × clicks", () => {
    const { h, feed } = setup();
    feed(T0 + 50 * MINUTE, [
      ev(T0, "p1"),
      ev(T0 + 10 * MINUTE, "p1"),
      ev(T0 + 20 * MINUTE, "p1"),
      ev(T0 + 30 * MINUTE, "p1", "click"),
      ev(T0 + 1 * MINUTE, "p2"),
      ev(T0 + 2 * MINUTE, "p2", "click"),
      ev(T0 + 3 * MINUTE, "p2", "click"),
      ev(T0 + 4 * MINUTE, "p3"),
      ev(T0 + 5 * MINUTE, "p3"),
      ev(T0 + 6 * MINUTE, "p3"),
      ev(T0 + 7 * MINUTE, "p3"),
      ev(T0 + 8 * MINUTE, "p4", "cart"),
      ev(T0 + 9 * MINUTE, "p4", "purchase"),
      ev(T0 + HOUR, "p5"), // next window
    ]);
    const part = h.part("1h", T0);
    // p1: 3 × 1 + 1 × 2 = 5; p2: 1 + 2 × 2 = 5 (tie: "p1" < "p2"); p3: 4 × 1 = 4.
    expect(part).toEqual({
      kind: "1h",
      start: T0,
      end: T0 + HOUR,
      items: [
        ["p1", 5, 3, 1, 0, 0],
        ["p2", 5, 1, 2, 0, 0],
        ["p3", 4, 4, 0, 0, 0],
      ],
      final: false,
      wm: T0 + 50 * MINUTE,
    });
    expect(h.part("1h", T0 + HOUR).items).toEqual([["p5", 1, 1, 0, 0, 0]]);
  });

  it("should take the weights from the options", () => {
    const { h, feed } = setup({ weights: { view: 0.5, click: 3 } });
    feed(T0, [ev(T0, "p1"), ev(T0, "p1"), ev(T0, "p1", "click")]);
    // 2 × 0.5 + 1 × 3 = 4
    expect(h.part("1h", T0).items).toEqual([["p1", 4, 2, 1, 0, 0]]);
  });

  // REES46 has views, carts and purchases but no clicks, so with the old view and click
  // weights carts and purchases never counted.
  it("should count every event type that TRENDING_WEIGHTS lists, and no other", () => {
    const { h, feed } = setup({ weights: { view: 1, cart: 3, purchase: 5 } });
    feed(T0, [
      ev(T0, "p1"),
      ev(T0, "p1", "cart"),
      ev(T0, "p2", "purchase"),
      ev(T0, "p2", "click"), // not listed: not counted
      ev(T0, "p3", "click"),
    ]);
    expect(h.part("1h", T0).items).toEqual([
      ["p2", 5, 0, 0, 0, 1],
      ["p1", 4, 1, 0, 1, 0],
    ]);
  });

  it("should count a rating by its value (the movies preset's weights)", () => {
    const { h, feed } = setup({ weights: { rating: 1 } });
    const rated = (i: string, r: number) => ({ ...ev(T0, i, "rating"), r });
    feed(T0, [rated("m1", 5), rated("m1", 0.5), rated("m2", 4), ev(T0, "m3")]);
    expect(h.part("1h", T0).items.map(([i, score]) => [i, score])).toEqual([
      ["m1", 5.5],
      ["m2", 4],
    ]);
  });

  it("should count a rating of 4 or more by its value too, though the movies preset made it a purchase", () => {
    const { h, feed } = setup({ weights: { rating: 1 } });
    // parse relabels a movies rating of 4+ as a purchase (done, for the ranking); it keeps `r`.
    const bought = (i: string, r: number) => ({ ...ev(T0, i, "purchase"), r });
    const rated = (i: string, r: number) => ({ ...ev(T0, i, "rating"), r });
    feed(T0, [bought("m1", 5), bought("m1", 4.5), rated("m2", 3), bought("m3", 4)]);
    expect(h.part("1h", T0).items.map(([i, score]) => [i, score])).toEqual([
      ["m1", 9.5],
      ["m3", 4],
      ["m2", 3],
    ]);
  });

  it("should read cells of older snapshots, which held views and clicks only", () => {
    const state = createStageState();
    state.map<number[]>("cell").set(`1h|${T0}|p1`, [2, 1]);
    const h = createTrendingHandler(state, fakeOutput().out, {
      partition: Q,
      oneHourOutOfOrdernessMs: 2 * HOUR,
      oneDayOutOfOrdernessMs: 26 * HOUR,
      weights: { view: 1, click: 2 },
      topK: 10,
    });
    expect(h.part("1h", T0).items).toEqual([["p1", 4, 2, 1, 0, 0]]);
  });

  it("should keep at most topK entries per window", () => {
    const { h, feed } = setup({ topK: 2 });
    feed(T0, [ev(T0, "a"), ev(T0, "b"), ev(T0, "b"), ev(T0, "c", "click")]);
    expect(h.part("1h", T0).items.map((x) => x[0])).toEqual(["b", "c"]);
  });

  it("should sum 24 hourly buckets in a 24 h window sliding by 1 h", () => {
    const { h, feed } = setup();
    let wb = -1;
    for (const [ts, item, t] of [
      [T0 + 30 * MINUTE, "p1", "view"],
      [T0 + 5 * HOUR + MINUTE, "p2", "click"],
      [T0 + 23 * HOUR + 59 * MINUTE, "p3", "view"],
      [T0 + 24 * HOUR, "p4", "view"],
    ] as const) {
      feed(ts, [ev(ts, item, t, wb)]);
      wb = ts;
    }
    // [T0, T0 + 24h): p1, p2, p3; [T0 + 1h, T0 + 25h): p2, p3, p4.
    expect(h.part("24h", T0)).toMatchObject({
      start: T0,
      end: T0 + DAY,
      items: [
        ["p2", 2, 0, 1, 0, 0],
        ["p1", 1, 1, 0, 0, 0],
        ["p3", 1, 1, 0, 0, 0],
      ],
    });
    expect(h.part("24h", T0 + HOUR).items).toEqual([
      ["p2", 2, 0, 1, 0, 0],
      ["p3", 1, 1, 0, 0, 0],
      ["p4", 1, 1, 0, 0, 0],
    ]);
  });

  describe("tick", () => {
    it("should publish nothing before any data", () => {
      const { tick } = setup();
      expect(tick()).toEqual([]);
    });

    it("should publish the newest windows and a heartbeat, then nothing until something changes", () => {
      const { feed, tick } = setup();
      const wm = T0 + 30 * MINUTE;
      feed(wm, [ev(T0 + 10 * MINUTE, "p1"), ev(T0 + 20 * MINUTE, "p1", "click")]);
      // Newest 1 h window: [T0, T0+1h); newest 24 h window ends with it: [T0+1h−24h, T0+1h).
      const items: TrendingPart["items"] = [["p1", 1 + 2, 1, 1, 0, 0]];
      expect(tick()).toEqual([
        [`1h.${T0}.${Q}`, { kind: "1h", start: T0, end: T0 + HOUR, items, final: false, wm }],
        [
          `24h.${T0 + HOUR - DAY}.${Q}`,
          { kind: "24h", start: T0 + HOUR - DAY, end: T0 + HOUR, items, final: false, wm },
        ],
        [`wm.${Q}`, { q: Q, wm }],
      ]);
      expect(tick()).toEqual([]);
      // Progress moves without records: only the heartbeat.
      feed(wm + MINUTE, []);
      expect(tick()).toEqual([[`wm.${Q}`, { q: Q, wm: wm + MINUTE }]]);
      expect(tick()).toEqual([]);
    });

    it("should publish the newest window again after a change", () => {
      const { feed, tick } = setup();
      feed(T0 + MINUTE, [ev(T0 + MINUTE, "p1")]);
      tick();
      feed(T0 + 2 * MINUTE, [ev(T0 + 2 * MINUTE, "p1", "click", T0 + MINUTE)]);
      const [first] = tick() as [[string, TrendingPart]];
      expect(first).toEqual([
        `1h.${T0}.${Q}`,
        expect.objectContaining({ items: [["p1", 3, 1, 1, 0, 0]], final: false }),
      ]);
    });
  });

  describe("finality", () => {
    it("should publish a final 1 h part once progress − 2 h passes the window end", () => {
      const { feed } = setup();
      feed(T0 + 10 * MINUTE, [ev(T0 + 10 * MINUTE, "p1")]);
      // Window [T0, T0+1h): final at progress T0 + 1h + 2h.
      expect(feed(T0 + 3 * HOUR - 1, [])).toEqual([]);
      expect(feed(T0 + 3 * HOUR, [])).toEqual([
        [
          `1h.${T0}.${Q}`,
          {
            kind: "1h",
            start: T0,
            end: T0 + HOUR,
            items: [["p1", 1, 1, 0, 0, 0]],
            final: true,
            wm: T0 + 3 * HOUR,
          },
        ],
      ]);
      expect(feed(T0 + 4 * HOUR, [])).toEqual([]);
    });

    it("should publish a 24 h window as final once, when it differs from the window an hour before", () => {
      const { feed } = setup();
      feed(T0 + 30 * MINUTE, [ev(T0 + 30 * MINUTE, "p1")]);
      feed(T0 + 5 * HOUR + 30 * MINUTE, [ev(T0 + 5 * HOUR + 30 * MINUTE, "p2")]);
      const finals24 = (ps: [string, TrendingPart][]) =>
        ps
          .filter(([, p]) => p.kind === "24h")
          .map(([k, p]) => (expect(p.final).toBe(true), [k, p.items.map((i) => i[0])]));
      // The window ending at T0 + 1h is final at progress T0 + 1h + 26h.
      expect(finals24(feed(T0 + 27 * HOUR - 1, []))).toEqual([]);
      const first = finals24(feed(T0 + 27 * HOUR, []));
      expect(first).toEqual([[`24h.${T0 + HOUR - DAY}.${Q}`, ["p1"]]]);
      const rest = finals24(feed(T0 + 40 * HOUR, []));
      const later = finals24(feed(T0 + 70 * HOUR, []));
      const w = (endHours: number) => `24h.${T0 + endHours * HOUR - DAY}.${Q}`;
      // p1 (hour T0) lies in the windows ending at T0 + 1h … T0 + 24h, p2 (hour T0 + 5h) in those
      // ending at T0 + 6h … T0 + 29h. Published: the windows that gain or lose one of them, the
      // last one empty; the others hold what the window before holds.
      expect([...first, ...rest, ...later]).toEqual([
        [w(1), ["p1"]],
        [w(6), ["p1", "p2"]],
        [w(25), ["p2"]],
        [w(30), []],
      ]);
    });
  });

  it("should publish the emptied 24 h window when the close before it ended where it loses its data", () => {
    const { feed } = setup();
    feed(T0 + 30 * MINUTE, [ev(T0 + 30 * MINUTE, "p1")]);
    const finals24 = (ps: [string, TrendingPart][]) =>
      ps.filter(([, p]) => p.kind === "24h").map(([k, p]) => [k, p.items.map((i) => i[0])]);
    // The first close ends at T0 + 24 h (progress less 26 h), the window that still holds p1;
    // the next one reaches the window that loses it.
    const first = finals24(feed(T0 + 50 * HOUR, []));
    const next = finals24(feed(T0 + 51 * HOUR, []));
    expect([...first, ...next]).toEqual([
      [`24h.${T0 + HOUR - DAY}.${Q}`, ["p1"]],
      [`24h.${T0 + HOUR}.${Q}`, []],
    ]);
  });

  describe("lateness", () => {
    it("should send an event late for 1 h but on time for 24 h to reco.late once, and count it in 24 h", () => {
      const { h, rec, late, feed } = setup();
      const wb = T0 + 3 * HOUR;
      feed(wb, [ev(wb, "p1")]);
      const lateOne = ev(T0 + 50 * MINUTE, "p2", "view", wb); // < wb − 2h = T0 + 1h
      feed(wb, [lateOne]);
      expect(rec.raws).toHaveLength(1);
      const raw = rec.raws[0]!;
      expect(raw.subject).toBe("reco.late");
      expect(raw.msgId).toBe(`late.trending.1h.${lateOne.s}`);
      expect(raw.headers["Reco-Reason"]).toBe("behind_watermark:1h");
      expect(raw.headers["Reco-Watermark"]).toBe(String(wb - 2 * HOUR));
      expect(JSON.parse(dec.decode(raw.data))).toEqual({
        stage: "trending",
        reason: "behind_watermark:1h",
        watermark: wb - 2 * HOUR,
        event: lateOne,
      } satisfies LateRecord);
      expect(late).toEqual([["trending", 1]]);
      expect(h.part("1h", T0).items).toEqual([]);
      // Newest 24 h window [wb + 1h − 24h, wb + 1h) holds both.
      expect(h.part("24h", wb + HOUR - DAY).items).toEqual([
        ["p1", 1, 1, 0, 0, 0],
        ["p2", 1, 1, 0, 0, 0],
      ]);
    });

    it("should count late events by window kind", () => {
      const { rec, late, lateByPath, feed } = setup();
      const wb = T0 + 30 * HOUR;
      feed(wb, [ev(wb, "p1")]);
      feed(wb, [
        ev(wb - 3 * HOUR, "p2", "view", wb), // late for 1 h only
        ev(wb - 27 * HOUR, "p3", "click", wb), // late for both
        ev(wb - 28 * HOUR, "p4", "cart", wb), // not a trending event
      ]);
      expect(rec.raws.map((r) => r.headers["Reco-Reason"])).toEqual([
        "behind_watermark:1h",
        "behind_watermark:1h",
        "behind_watermark:24h",
      ]);
      expect(late).toEqual([
        ["trending", 2],
        ["trending", 1],
      ]);
      expect(lateByPath).toEqual({ "1h": 2, "24h": 1 });
    });

    it("should keep an event exactly at wb − 2 h on time for 1 h", () => {
      const { h, rec, feed } = setup();
      const wb = T0 + 3 * HOUR;
      feed(wb, [ev(wb, "p1")]);
      feed(wb, [ev(T0 + HOUR, "p2", "view", wb)]);
      expect(rec.raws).toEqual([]);
      expect(h.part("1h", T0 + HOUR).items).toEqual([["p2", 1, 1, 0, 0, 0]]);
    });
  });

  it("should skip records with s <= lastUpTo", () => {
    const { h, feed } = setup();
    const a = ev(T0, "p1");
    const b = ev(T0, "p1");
    feed(T0, [a, b], a.s);
    expect(h.part("1h", T0).items).toEqual([["p1", 1, 1, 0, 0, 0]]);
  });
});
