import { Registry } from "prom-client";
import { describe, expect, it } from "vitest";
import { createStageState } from "../state/store.js";
import { encodeEnvelope } from "../actors/host/index.js";
import type { StageHandler, StageSpec } from "../actors/host/index.js";
import type { ParsedRecord } from "../actors/contract/index.js";
import { heartbeatRow, type PopularityRow, createPopularityTable } from "../actors/stages/index.js";
import { createAnswerMemo } from "../actors/serving/index.js";
import { recommenderWiring } from "../actors/plan/index.js";
import { fakeOutput } from "./helpers/stage.js";
import { recordMaker } from "./helpers/source-stages.js";

const T0 = Date.UTC(2026, 10, 1);
const M = 60_000;

describe("answer memo", () => {
  it("keeps answers under one stamp and forgets all of them when any part of it changes", () => {
    const memo = createAnswerMemo<string>(10);
    const model = {};
    memo.set("u1", [1, model], "a");
    memo.set("u2", [1, model], "b");
    expect(memo.get("u1", [1, model])).toBe("a");
    // Another object at the same place (a new model) is another stamp.
    expect(memo.get("u2", [1, {}])).toBeUndefined();
    expect(memo.get("u2", [1, model])).toBeUndefined(); // forgotten, not kept aside
    memo.set("u1", [2, model], "c");
    expect(memo.get("u1", [3, model])).toBeUndefined();
    expect(memo.size).toBe(0);
  });

  it("is bounded: the oldest answer goes first", () => {
    const memo = createAnswerMemo<number>(3);
    for (let x = 0; x < 5; x++) memo.set(`u${x}`, [0], x);
    expect(memo.size).toBe(3);
    expect(memo.get("u0", [0])).toBeUndefined();
    expect(memo.get("u4", [0])).toBe(4);
  });
});

/** The blend's wiring over real source stage handlers (one partition), fed hops by hand. */
async function wired() {
  const registry = new Registry();
  const specs = new Map<string, StageSpec<StageHandler>>();
  const ranker = recommenderWiring(
    { ranker: "blend", preset: "ecommerce", idleTimeoutMs: 0, partitions: 1 },
    {
      stream: "HOPS",
      run: (spec) => void specs.set(`${spec.stage}/${spec.partition}`, spec),
      live: (id) => handlers.get(id),
      // No training in this test: the model part of the stamp has tests of its own.
      train: () => new Promise(() => undefined),
      registry,
    },
  );
  const handlers = new Map<string, StageHandler>();
  const outputs = new Map<string, ReturnType<typeof fakeOutput>["rec"]>();
  for (const [id, spec] of specs) {
    const o = fakeOutput();
    outputs.set(id, o.rec);
    handlers.set(id, await spec.create(createStageState(), o.out));
  }
  let upTo = 0;
  let seq = 0;
  /** Which handlers read a subject (a wildcard's readers too). */
  const reads = (id: string, subject: string) => {
    const [a, b] = [specs.get(id)!.subject.split("."), subject.split(".")];
    return a.length === b.length && a.every((t, k) => t === "*" || t === b[k]);
  };
  /** A hop to every reader of its subject; then the pairs history/0 sent, to covisit/0. */
  const send = (data: Uint8Array, last: number) => {
    seq++;
    for (const [id, h] of handlers)
      if (reads(id, "reco.parse.0"))
        h.handle({ seq, subject: "reco.parse.0", data, headers: {} }, last);
    const emitted = outputs.get("history/0")!.emits.splice(0);
    const pairs = emitted.filter(([subject]) => subject === "reco.pairs.0.0").map(([, r]) => r);
    if (pairs.length === 0) return;
    seq++;
    handlers
      .get("covisit/0")!
      .handle(
        { seq, subject: "reco.pairs.0.0", data: encodeEnvelope(seq - 1, -1, pairs), headers: {} },
        0,
      );
  };
  const feed = (recs: ParsedRecord[]) => {
    const last = upTo;
    upTo = recs[recs.length - 1]!.s;
    send(encodeEnvelope(upTo, recs[recs.length - 1]!.ts, recs), last);
  };
  /** An idle marker: progress to `wm`, no records. */
  const idle = (wm: number) => send(encodeEnvelope(upTo, wm, []), upTo);
  /** The memo's counts as the reco_recommender gauge reports them. */
  const memoCounts = async () => {
    const values = (await registry.getSingleMetric("reco_recommender")!.get()).values;
    const of = (name: string) => values.find((v) => v.labels.name === name)?.value;
    return { hits: of("memo_hits"), misses: of("memo_misses") };
  };
  return { ranker, feed, idle, memoCounts, handlers, specs };
}

describe("the blend's answers kept between changes (recommender-wiring)", () => {
  const rows = new Map<string, PopularityRow>();
  const row = (item: string) => rows.get(item);

  it("answers a repeated request from the memo, and anew after any source stage's input", async () => {
    const { ranker, feed, memoCounts } = await wired();
    const rec = recordMaker();
    feed([
      rec("u1", "p1", T0, "view", "c1"),
      rec("u2", "p1", T0 + M, "view", "c1"),
      rec("u2", "p2", T0 + 2 * M, "purchase", "c1"),
      rec("u3", "p3", T0 + 3 * M, "purchase", "c2"),
    ]);
    const first = ranker.answer("u1", 10, undefined, row, undefined, 0)!;
    expect(first.items.length).toBeGreaterThan(0);
    // Nothing changed: the kept answer itself.
    expect(ranker.answer("u1", 10, undefined, row, undefined, 0)).toBe(first);
    expect(await memoCounts()).toEqual({ hits: 1, misses: 1 });
    // Another user's events change u1's similar items: the memo must not serve the old answer.
    // (Within 10 min of event time: the clock alone would not make it recompute.)
    feed([
      rec("u4", "p1", T0 + 3 * M + 1, "view", "c1"),
      rec("u4", "p9", T0 + 3 * M + 2, "cart", "c9"),
    ]);
    const after = ranker.answer("u1", 10, undefined, row, undefined, 0)!;
    expect(after).not.toBe(first);
    expect(after).toEqual(ranker.answer("u1", 10, undefined, row)); // computed without the memo
    expect(after.items.map((i) => i.itemId)).toContain("p9");
    expect(first.items.map((i) => i.itemId)).not.toContain("p9");
    // A new popularity row (brand, price) is part of the answer: another rows version.
    rows.set("p9", {
      item: "p9",
      category: "c9",
      brand: "b9",
      avgPrice: 9,
      purchases: 3,
      wm: T0,
    });
    const withRow = ranker.answer("u1", 10, undefined, row, undefined, 1)!;
    expect(withRow.items.find((i) => i.itemId === "p9")?.brand).toBe("b9");
  });

  it("reads a restarted source stage, not the view composed over the one before", async () => {
    const { ranker, feed, handlers, specs } = await wired();
    const rec = recordMaker();
    feed([rec("u1", "p1", T0, "view", "c1"), rec("u2", "p1", T0 + M, "purchase", "c1")]);
    // Computed each time (no rows version): the composed view is what is kept between requests.
    const before = ranker.answer("u1", 10, undefined, row)!;
    expect(ranker.answer("u1", 10, undefined, row)).toEqual(before);
    expect(before.statusMessage).toBe("");
    // history/0 restarted from an empty state: u1 is now unknown to the blend.
    handlers.set(
      "history/0",
      await specs.get("history/0")!.create(createStageState(), fakeOutput().out),
    );
    const after = ranker.answer("u1", 10, undefined, row)!;
    expect(after.statusMessage).toBe("unknown user: popular and trending items");
  });

  it("keeps an answer while only the clock moves (idle progress), at most 10 min of event time", async () => {
    const { ranker, feed, idle } = await wired();
    const rec = recordMaker();
    feed([rec("u1", "p1", T0, "view", "c1"), rec("u2", "p1", T0 + M, "purchase", "c1")]);
    const first = ranker.answer("u1", 10, undefined, row, undefined, 0)!;
    idle(T0 + 10 * M);
    expect(ranker.answer("u1", 10, undefined, row, undefined, 0)).toBe(first);
    idle(T0 + 11 * M + 1);
    const later = ranker.answer("u1", 10, undefined, row, undefined, 0)!;
    expect(later).not.toBe(first);
    expect(later.watermark).toBe(T0 + 11 * M + 1);
    expect(later).toEqual(ranker.answer("u1", 10, undefined, row));
  });
});

describe("popularity table version (part of the memo's stamp)", () => {
  it("moves with the rows, not with heartbeats that move only the watermark", () => {
    const table = createPopularityTable();
    const r = { item: "p1", purchases: 2, category: "c", brand: "b", avgPrice: 1, wm: T0 };
    table.apply(r);
    const v = table.version;
    table.apply(heartbeatRow(T0 + M));
    table.apply(heartbeatRow(T0 + 2 * M));
    expect(table.version).toBe(v);
    expect(table.wm).toBe(T0 + 2 * M);
    table.apply({ ...r, purchases: 3 });
    expect(table.version).toBe(v + 1);
    table.apply({ ...r, purchases: 0 }); // left the table
    expect(table.version).toBe(v + 2);
  });
});
