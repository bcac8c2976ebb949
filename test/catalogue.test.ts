import { describe, it, expect } from "vitest";
import { Subject, type Observable } from "rxjs";
import { TestScheduler } from "rxjs/testing";
import { createStageLogic, type InputBatch, type StageContext } from "../runtime/index.js";
import { createStageState } from "../state/store.js";
import type { InvalidArgumentError, ParsedRecord } from "../actors/contract/index.js";
import {
  type RecoBackend,
  type TrendingSnapshot,
  learn,
  mergeExplicit,
  resolveItem,
  validateItemUpsert,
  type ItemUpsert,
} from "../actors/contract/index.js";
import { catalogueStage, catalogueUpsertStage, readUpsert } from "../actors/stages/index.js";
import { createCatalogueTable, withCatalogue } from "../actors/serving/index.js";
import type { InputMessage } from "../actors/host/index.js";

const enc = new TextEncoder();

function ctx(): StageContext<Record<string, never>> & { counts: Record<string, number> } {
  const counts: Record<string, number> = {};
  return {
    name: "catalogue",
    state: createStageState(),
    settings: {},
    scheduler: new TestScheduler(() => undefined),
    count: (name, n = 1) => void (counts[name] = (counts[name] ?? 0) + n),
    counts,
  };
}

const rec = (s: number, i: string, f: Partial<ParsedRecord>): ParsedRecord => ({
  id: `e${s}`,
  t: "view",
  ts: 1_000 * s,
  u: "u1",
  i,
  c: "",
  b: "",
  pr: -1,
  r: -1,
  s,
  wb: -1,
  ...f,
});

const batch = <R>(records: R[], from: number, upTo: number): InputBatch<R> => ({
  records,
  position: { from, upTo },
  progress: { from: -1, to: -1 },
});

const msg = (seq: number, body: unknown, time = 5_000 + seq): InputMessage => ({
  seq,
  subject: "items.upsert",
  data: enc.encode(typeof body === "string" ? body : JSON.stringify(body)),
  headers: {},
  time,
});

describe("an upsert body", () => {
  it("keeps the fields given and names the first bad one", () => {
    expect(validateItemUpsert({ title: "T", price: 0, hidden: true }, "7")).toEqual({
      itemId: "7",
      title: "T",
      price: 0,
      hidden: true,
    });
    const bad = (body: unknown, id?: string) => {
      try {
        validateItemUpsert(body, id);
      } catch (err) {
        return (err as InvalidArgumentError).field;
      }
      return "none";
    };
    expect(bad({ price: -0.01 }, "1")).toBe("price");
    expect(bad({ price: Infinity }, "1")).toBe("price");
    expect(bad({ labels: ["a", 3] }, "1")).toBe("labels");
    expect(bad({ title: "x".repeat(1025) }, "1")).toBe("title");
    expect(bad({ colour: "red" }, "1")).toBe("colour");
    expect(bad({ item_id: "2" }, "1")).toBe("item_id"); // the path names the item
    expect(bad({ title: "t" })).toBe("item_id");
    expect(bad([], "1")).toBe("body");
    expect(validateItemUpsert({ item_id: 12, brand: "b" })).toEqual({ itemId: "12", brand: "b" });
  });

  it("is dead-lettered with a machine-readable reason", () => {
    expect(readUpsert(msg(1, "{"))).toEqual({ reason: "bad_json" });
    expect(readUpsert(msg(1, [1]))).toEqual({ reason: "not_an_object" });
    expect(readUpsert(msg(1, { title: "t" }))).toEqual({ reason: "missing_field:item_id" });
    expect(readUpsert(msg(1, { item_id: "1", price: "x" }))).toEqual({
      reason: "invalid_field:price",
    });
    expect(readUpsert(msg(1, { item_id: "1", hiden: true }))).toEqual({
      reason: "unknown_field:hiden",
    });
  });
});

describe("the layers", () => {
  it("merge upserts field by field: fields left out keep their value", () => {
    const a = mergeExplicit(undefined, { itemId: "1", title: "A", hidden: true }, 10, 1);
    const b = mergeExplicit(a, { itemId: "1", hidden: false, labels: ["x"] }, 20, 2);
    expect(b).toEqual({ title: "A", hidden: false, labels: ["x"], at: 20, seq: 2 });
  });

  it("learn the latest non-empty category, brand and price, unchanged when nothing new", () => {
    const a = learn(undefined, { c: "phones", b: "acme", pr: 10, ts: 1 });
    const b = learn(a, { c: "", b: "", pr: -1, ts: 2 });
    expect(b).toBe(a);
    expect(learn(b, { c: "", b: "zeta", pr: 0, ts: 3 })).toEqual({
      c: "phones",
      b: "zeta",
      p: 0,
      at: 3,
    });
  });

  it("resolve explicit over the movies file over events, whatever arrived first", () => {
    const x = mergeExplicit(undefined, { itemId: "1", brand: "X", categories: ["c1"] }, 50, 1);
    const base = { title: "Film", categories: ["Drama", "War"] };
    const l = { c: "drama", b: "L", p: 3, at: 70 };
    expect(resolveItem("1", x, base, l)).toEqual({
      itemId: "1",
      title: "Film",
      categories: ["c1"],
      brand: "X",
      price: 3,
      labels: [],
      hidden: false,
      updatedAt: 70,
    });
    expect(resolveItem("1", undefined, undefined, l)).toMatchObject({
      categories: ["drama"],
      brand: "L",
    });
    expect(resolveItem("1", undefined, base, undefined)).toMatchObject({
      price: null,
      updatedAt: null,
    });
  });
});

describe("the catalogue stages (marble tests)", () => {
  it("learn per batch, once per changed item, skipping records seen before a restart", () => {
    const ts = new TestScheduler((a, b) => expect(a).toEqual(b));
    const { operator } = createStageLogic(catalogueStage, ctx());
    ts.run(({ cold, expectObservable }) => {
      const input = cold("-a-b-c|", {
        a: batch([rec(1, "p", { c: "tv", pr: 5 }), rec(2, "p", { b: "sony" })], 0, 2),
        b: batch([rec(3, "p", { c: "tv" }), rec(4, "q", {})], 2, 4),
        // Records 1 and 2 again, as a replay sends them: already counted.
        c: batch([rec(1, "p", { c: "radio" }), rec(5, "q", { pr: 1 })], 4, 5),
      });
      expectObservable(input.pipe(operator)).toBe("-A-B-C|", {
        A: { learned: [{ item: "p", c: "tv", b: "sony", p: 5, at: 2_000 }] },
        B: { learned: [] },
        C: { learned: [{ item: "q", c: "", b: "", p: 1, at: 5_000 }] },
      });
    });
  });

  it("apply upserts in stream order and send bad ones to the dead letters", () => {
    const ts = new TestScheduler((a, b) => expect(a).toEqual(b));
    const c = ctx();
    const { operator, view } = createStageLogic(catalogueUpsertStage, c);
    const bad = msg(2, { item_id: "1", price: -5 });
    ts.run(({ cold, expectObservable }) => {
      const input = cold("-a-b|", {
        a: batch([msg(1, { item_id: "1", title: "T", hidden: true })], 0, 1),
        b: batch([bad, msg(3, { item_id: "1", hidden: false })], 1, 3),
      });
      expectObservable(input.pipe(operator)).toBe("-A-B|", {
        A: {
          explicit: [{ item: "1", title: "T", hidden: true, at: 5_001, seq: 1 }],
          dlq: [],
        },
        B: {
          explicit: [{ item: "1", title: "T", hidden: false, at: 5_003, seq: 3 }],
          dlq: [{ msg: bad, reason: "invalid_field:price" }],
        },
      });
    });
    expect(view.explicit("1")).toMatchObject({ hidden: false, seq: 3 });
    expect(c.counts).toEqual({ upserts: 2, dead_letter: 1 });
  });
});

describe("answers through the catalogue", () => {
  const snapshot = (ids: string[]): TrendingSnapshot => ({
    window: "1h",
    windowStart: 0,
    windowEnd: 3_600_000,
    items: ids.map((itemId, k) => ({ itemId, score: 10 - k, views: 10 - k, clicks: 0 })),
    final: false,
    watermark: 0,
  });
  const item = (itemId: string, rank: number) => ({
    itemId,
    score: 1 / rank,
    rank,
    category: "",
    brand: "",
    averagePrice: 0,
    source: "POPULAR_FALLBACK" as const,
    purchases: 1,
  });
  const ranked = ["a", "b", "c", "d"];
  const fake = (trending$: Observable<TrendingSnapshot>): RecoBackend => ({
    isReady: () => true,
    getRecommendations: async (userId, n, _s, o) => ({
      userId,
      items: ranked
        .filter((i) => !o?.exclude?.has(i))
        .slice(0, n)
        .map((i, k) => item(i, k + 1)),
      topCategories: [],
      watermark: 0,
      statusMessage: "",
    }),
    trending: () => trending$,
    similarItems: (itemId, n) => ({
      itemId,
      basis: "CO_VISITATION",
      items: ranked.slice(0, n).map((i, k) => ({ ...item(i, k + 1), explanation: "" })),
      watermark: 0,
      statusMessage: "",
    }),
  });
  const hide = (t: ReturnType<typeof createCatalogueTable>, u: ItemUpsert, seq: number) =>
    t.applyExplicit(u.itemId, mergeExplicit(t.explicit(u.itemId), u, 0, seq));

  it("leave hidden items out before cutting to n, and bring them back", async () => {
    const t = createCatalogueTable(new Map([["b", { title: "Bee", categories: [] }]]));
    const b = withCatalogue(fake(new Subject<TrendingSnapshot>()), t);
    const ids = async () => (await b.getRecommendations("u", 2, AbortSignal.timeout(100))).items;
    expect((await ids()).map((i) => [i.itemId, i.title])).toEqual([
      ["a", undefined],
      ["b", "Bee"],
    ]);
    hide(t, { itemId: "a", hidden: true }, 1);
    expect((await ids()).map((i) => [i.itemId, i.rank])).toEqual([
      ["b", 1],
      ["c", 2],
    ]);
    expect((await b.similarItems!("x", 3)).items.map((i) => i.itemId)).toEqual(["b", "c", "d"]);
    hide(t, { itemId: "a", hidden: false }, 2);
    expect((await ids()).map((i) => i.itemId)).toEqual(["a", "b"]);
  });

  it("re-send the trending list when an item is hidden or unhidden", () => {
    const t = createCatalogueTable();
    const trending$ = new Subject<TrendingSnapshot>();
    const seen: string[][] = [];
    withCatalogue(fake(trending$), t)
      .trending("1h")
      .subscribe((s) => seen.push(s.items.map((e) => e.itemId)));
    trending$.next(snapshot(["a", "b"]));
    hide(t, { itemId: "a", hidden: true }, 1);
    hide(t, { itemId: "a", labels: ["x"] }, 2); // still hidden: nothing to re-send
    hide(t, { itemId: "a", hidden: false }, 3);
    expect(seen).toEqual([["a", "b"], ["b"], ["a", "b"]]);
  });

  it("describe a repeated trending list once while the catalogue stays, anew once it changes", () => {
    const t = createCatalogueTable(new Map([["a", { title: "Ay", categories: [] }]]));
    const trending$ = new Subject<TrendingSnapshot>();
    const seen: TrendingSnapshot[] = [];
    withCatalogue(fake(trending$), t)
      .trending("1h")
      .subscribe((s) => seen.push(s));
    // The hub's repeated finals: new snapshots over the same items array.
    const first = snapshot(["a", "b"]);
    trending$.next(first);
    trending$.next({ ...first, windowStart: 3_600_000, windowEnd: 7_200_000 });
    expect(seen[1]!.items).toBe(seen[0]!.items);
    expect(seen[1]!.items.map((e) => e.title)).toEqual(["Ay", undefined]);
    hide(t, { itemId: "b", title: "Bee" }, 1);
    trending$.next({ ...first, windowStart: 7_200_000, windowEnd: 10_800_000 });
    expect(seen.at(-1)!.items.map((e) => e.title)).toEqual(["Ay", "Bee"]);
    expect(seen.at(-1)!.windowStart).toBe(7_200_000);
  });

  it("prefer an upserted brand and price, and fill only gaps from events", async () => {
    const t = createCatalogueTable();
    t.applyLearned("a", { c: "", b: "learned", p: 7, at: 1 });
    t.applyLearned("b", { c: "", b: "learned", p: 7, at: 1 });
    hide(t, { itemId: "b", brand: "set", price: 2 }, 1);
    const b = withCatalogue(fake(new Subject<TrendingSnapshot>()), t);
    const items = (await b.getRecommendations("u", 2, AbortSignal.timeout(100))).items;
    expect(items.map((i) => [i.brand, i.averagePrice])).toEqual([
      ["learned", 7],
      ["set", 2],
    ]);
  });
});
