import { describe, expect, it } from "vitest";
import { TestScheduler } from "rxjs/testing";
import { createStageLogic } from "../runtime/index.js";
import { createStageState } from "../state/store.js";
import { itemCountsStage, type CovisitView, type ItemCountsView } from "../actors/stages/index.js";
import { itemWideView } from "../actors/serving/index.js";
import { partitionOf, type ParsedRecord } from "../actors/contract/index.js";
import { ECOMMERCE, defaultSourceSettings, seededRandom } from "../actors/sources/index.js";
import { batchMaker, stageContext } from "./helpers/stage.js";
import { recordMaker, reloaded } from "./helpers/source-stages.js";

const T0 = Date.UTC(2026, 10, 1);
const M = 60_000;
const settings = { preset: ECOMMERCE, sources: defaultSourceSettings(ECOMMERCE) };

function setup(state = createStageState()) {
  const ts = new TestScheduler((actual, expected) => expect(actual).toEqual(expected));
  const { ctx } = stageContext(settings, ts, state);
  return { ts, state, logic: createStageLogic(itemCountsStage, ctx) };
}

describe("item-counts stage (marbles)", () => {
  it("counts trending and popular items, keeps categories, and skips records sent again", () => {
    const { ts, logic } = setup();
    const rec = recordMaker();
    const batch = batchMaker<ParsedRecord>();
    const a = [
      rec("u1", "p1", T0, "view", "electronics"),
      rec("u1", "p2", T0 + M),
      rec("u2", "p1", T0 + 2 * M),
    ];
    const b = [rec("u2", "p2", T0 + 3 * M, "purchase"), rec("u3", "p9", T0 + 3 * M)];
    ts.run(({ cold, expectObservable }) => {
      // c: the records of a again, after parse's restart (position from past them): not counted.
      const input = cold("a-b-c", {
        a: batch(T0 + 2 * M, a, 0),
        b: batch(T0 + 3 * M, b, 3),
        c: batch(T0 + 3 * M, a, 5),
      });
      expectObservable(input.pipe(logic.operator)).toBe("a-b-c", { a: {}, b: {}, c: {} });
    });
    const v = logic.view as ItemCountsView;
    const now = T0 + 9 * M;
    expect(
      v
        .popular()
        .top(now, 5)
        .map((x) => x.item),
    ).toEqual(["p2"]);
    expect(
      v
        .trending()
        .top(now, 3)
        .map((x) => [x.item, x.score > 0]),
    ).toEqual([
      ["p1", true],
      ["p9", true], // a view 6 minutes ago
      ["p2", true], // a view 8 minutes ago (its purchase is no trending count)
    ]);
    // p1: two views, once each, decayed over 7 and 9 minutes of a 1 h half-life.
    expect(v.trending().score("p1", now)).toBeCloseTo(2 ** (-7 / 60) + 2 ** (-9 / 60), 12);
    expect(v.categoryOf("p1")).toBe("electronics");
    expect(v.seq()).toBe(5);
  });

  it("says what an item counted before its latest record, and only that", () => {
    const { ts, logic } = setup();
    const rec = recordMaker();
    const batch = batchMaker<ParsedRecord>();
    const a = [rec("u1", "p1", T0), rec("u2", "p1", T0 + M, "purchase"), rec("u3", "p2", T0 + M)];
    ts.run(({ cold, expectObservable }) => {
      expectObservable(cold("a", { a: batch(T0 + M, a, 0) }).pipe(logic.operator)).toBe("a", {
        a: {},
      });
    });
    const v = logic.view as ItemCountsView;
    // p1's purchase (2): trending counted it not (a purchase), popular did (nothing before).
    const before = v.before("p1", 2)!;
    expect(before.trending).toBeUndefined();
    expect(before.popular).toEqual({ raw: undefined, anchor: Number.NaN });
    // p1's view (1) is followed by its purchase, counted since: no longer known.
    expect(v.before("p1", 1)).toBeUndefined();
    // p2's view (3): trending had no count of it.
    expect(v.before("p2", 3)!.trending!.raw).toBeUndefined();
    // A record not counted yet: nothing to take back.
    expect(v.before("p9", 4)).toEqual({});
  });

  it("averages the prices of every event of the item (views too), across a restart", () => {
    const { ts, state, logic } = setup();
    const rec = recordMaker();
    const batch = batchMaker<ParsedRecord>();
    const priced = (u: string, i: string, at: number, pr: number) => ({ ...rec(u, i, at), pr });
    const records = [
      priced("u1", "viewed", T0, 10),
      priced("u2", "viewed", T0 + M, 20),
      rec("u3", "viewed", T0 + 2 * M), // no price: not counted
      rec("u1", "unpriced", T0 + 3 * M),
    ];
    ts.run(({ cold, expectObservable }) => {
      const input = cold("a", { a: batch(T0 + 3 * M, records) });
      expectObservable(input.pipe(logic.operator)).toBe("a", { a: {} });
    });
    const v = logic.view as ItemCountsView;
    expect(v.priceOf("viewed")).toBe(15);
    expect(v.priceOf("unpriced")).toBeUndefined();
    expect(v.priceOf("never-seen")).toBeUndefined();
    const again = setup(reloaded(state));
    expect((again.logic.view as ItemCountsView).priceOf("viewed")).toBe(15);
    expect((again.logic.view as ItemCountsView).seq()).toBe(4);
  });

  it("split by item partition and read together, answer as one instance fed every event, across a restart", () => {
    const P = 4;
    const rand = seededRandom(3);
    const rec = recordMaker();
    const types = ["view", "view", "view", "cart", "purchase"] as const;
    const log: ParsedRecord[] = [];
    let ts = T0;
    for (let x = 0; x < 3000; x++) {
      // A jump of days now and then: the counters' anchors move on, not in every partition at once.
      ts += x % 700 === 699 ? 11 * 86_400_000 : Math.floor(rand() * 30_000);
      const r = rec(
        `u${Math.floor(rand() * 200)}`,
        `i${Math.floor(rand() ** 2 * 400)}`,
        ts - Math.floor(rand() * 600_000),
        types[Math.floor(rand() * types.length)],
        `c${Math.floor(rand() * 5)}`,
      );
      log.push({ ...r, pr: rand() < 0.5 ? Math.floor(rand() * 100) : -1 });
    }
    const one = setup();
    let parts = Array.from({ length: P }, () => setup());
    const feed = (
      s: ReturnType<typeof setup>,
      records: ParsedRecord[],
      make: ReturnType<typeof batchMaker<ParsedRecord>>,
    ) => {
      for (let x = 0; x < records.length; x += 97) {
        const chunk = records.slice(x, x + 97);
        s.ts.run(({ cold, expectObservable }) => {
          const input = cold("a", { a: make(chunk.at(-1)!.ts, chunk, chunk[0]!.s - 1) });
          expectObservable(input.pipe(s.logic.operator)).toBe("a", { a: {} });
        });
      }
    };
    const makers = {
      one: batchMaker<ParsedRecord>(),
      parts: parts.map(() => batchMaker<ParsedRecord>()),
    };
    const byPart = (records: ParsedRecord[], q: number) =>
      records.filter((r) => partitionOf(r.i, P) === q);
    feed(one, log.slice(0, 2000), makers.one);
    parts.forEach((s, q) => feed(s, byPart(log.slice(0, 2000), q), makers.parts[q]!));
    // Each partition restarts from its snapshot, then takes the rest.
    parts = parts.map((s) => setup(reloaded(s.state)));
    feed(one, log.slice(2000), makers.one);
    parts.forEach((s, q) => feed(s, byPart(log.slice(2000), q), makers.parts[q]!));
    const clock = { progress: () => ts, fed: () => 0, seq: () => -1 } as unknown as CovisitView;
    const oneView = one.logic.view as ItemCountsView;
    const merged = itemWideView(
      clock,
      parts.map((s) => s.logic.view as ItemCountsView),
    );
    for (const now of [ts, ts + 3_600_000]) {
      for (const n of [1, 10, 500])
        for (const [a, b] of [
          [merged.trending(), oneView.trending()],
          [merged.popular(), oneView.popular()],
        ] as const) {
          const got = a.top(now, n);
          const want = b.top(now, n);
          expect(got.map((x) => x.item)).toEqual(want.map((x) => x.item));
          got.forEach((x, k) => expect(Object.is(x.score, want[k]!.score)).toBe(true));
        }
    }
    for (let i = 0; i < 400; i++) {
      const item = `i${i}`;
      expect(merged.categoryOf(item)).toBe(oneView.categoryOf(item));
      expect(merged.priceOf(item)).toBe(oneView.priceOf(item));
      expect(Object.is(merged.trending().score(item, ts), oneView.trending().score(item, ts))).toBe(
        true,
      );
    }
    expect(merged.trending().items).toBe(oneView.trending().items);
  });
});
