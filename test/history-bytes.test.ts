import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { TestScheduler } from "rxjs/testing";
import { describe, expect, it } from "vitest";
import { historyStage, type HistoryView } from "../actors/stages/index.js";
import {
  decodeHistory,
  encodeHistory,
  createHistory,
  UserItems,
  type UserHistory,
  ECOMMERCE,
} from "../actors/sources/index.js";
import { createStageLogic } from "../runtime/index.js";
import { createStageState, openStateDb, type StageStateInternal } from "../state/store.js";
import { recordMaker } from "./helpers/source-stages.js";
import { batchMaker, stageContext } from "./helpers/stage.js";

/**
 * The history stage's per-user value (one per user, nearly all cold) is stored
 * as MessagePack bytes, not JSON text; values stored as JSON text before still load.
 */
const T0 = Date.UTC(2026, 10, 1);
const M = 60_000;
const settings = { preset: ECOMMERCE, halfLifeMs: 86_400_000, maxItemsPerUser: 4 };

function feed(state: StageStateInternal, recs: ReturnType<ReturnType<typeof recordMaker>>[]) {
  const ts = new TestScheduler((actual, expected) => expect(actual).toEqual(expected));
  const { ctx } = stageContext(settings, ts, state);
  const logic = createStageLogic(historyStage, ctx);
  const batch = batchMaker<(typeof recs)[number]>();
  if (recs.length > 0)
    ts.run(({ cold, expectObservable }) => {
      const input = cold("a", { a: batch(recs[recs.length - 1]!.ts, recs) });
      expectObservable(input.pipe(logic.operator)).toBe("a", { a: {} });
    });
  return (logic.view as HistoryView).history();
}

/** Every number the same bits (Object.is), in the same order. */
const same = (a: UserHistory, b: UserHistory) => {
  const walk = (x: unknown, y: unknown): boolean =>
    Array.isArray(x)
      ? Array.isArray(y) && x.length === y.length && x.every((e, i) => walk(e, y[i]))
      : Object.is(x, y);
  return walk([...a], [...b]);
};

describe("the history stage's stored value", () => {
  it("gives back the same entries, doubles bit for bit, for ids of any script", () => {
    for (const ids of [
      ["a", "1004856", ""],
      ["商品", "ça", "😀"],
      Array.from({ length: 250 }, (_, x) => `item-${x * 7919}`),
      ["x".repeat(300)],
      [],
    ]) {
      const v = new UserItems();
      ids.forEach((id, x) =>
        v.set(id, [Math.PI * (x + 1) * 1e-7 + 1 / 3, T0 + x * 1234.5, 2.5, "cart", x + 1, -1]),
      );
      const back = decodeHistory(encodeHistory(v));
      expect(same(back, v)).toBe(true);
      expect(same(back, JSON.parse(JSON.stringify(v)) as UserHistory)).toBe(true);
      expect(same(decodeHistory(JSON.stringify(v)), v)).toBe(true);
      // Entries (a value loaded, not yet read as a Map) write the same bytes as the Map.
      expect(encodeHistory([...v])).toEqual(encodeHistory(v));
    }
    expect(() => decodeHistory(new Uint8Array([0x2a]))).toThrow(/unknown/);
  });

  it("holds a cold user with one item in under 68 B of records and index (JSON text: ~76 B)", () => {
    const state = createStageState();
    const rec = recordMaker();
    const n = 20_000;
    feed(
      state,
      Array.from({ length: n }, (_, x) => rec(`u${100_000 + x}`, `i${x % 5000}`, T0 + x)),
    );
    state.takeDelta();
    expect(state.coldBytes() / n).toBeLessThan(68);
  });

  it("loads values a snapshot stored as JSON text, answers the same, and writes bytes from then on (LevelDB)", async () => {
    const dir = await mkdtemp(join(tmpdir(), "reco-history-bytes-"));
    const db = await openStateDb(dir);
    try {
      const store = db.instance("history", 0);
      const rec = recordMaker();
      const events = [
        rec("u1", "p1", T0),
        rec("u1", "p2", T0 + M, "cart"),
        rec("u2", "p1", T0 + M),
        rec("u1", "p3", T0 + 3 * M, "purchase"),
      ];
      // The layout before: a text map, fed the same events.
      const old = createStageState();
      const ref = createHistory(settings, old.map<UserHistory>("users", { text: true }));
      for (const r of events) ref.add({ u: r.u, i: r.i, t: r.t, ts: r.ts, c: r.c, r: r.r });
      old.meta = { seq: 4 };
      await store.write(old);
      const raw0 = new Map((await store.exportRaw()).entries);
      expect(String(raw0.get("users\u0000u1"))).toMatch(/^\[\["p/);

      const now = T0 + 4 * M;
      const st = await store.load();
      const h = feed(st, [rec("u3", "p9", T0 + 4 * M)]);
      for (const u of ["u1", "u2"]) {
        expect(h.candidates(u, now)).toEqual(ref.candidates(u, now));
        expect(h.recent(u, 5)).toEqual(ref.recent(u, 5));
      }
      st.meta = { ...st.meta, seq: 5 };
      await store.write(st);
      const raw = new Map((await store.exportRaw()).entries);
      expect(String(raw.get("users\u0000u3")).startsWith("\u0000b64:")).toBe(true);
      const again = feed(await store.load(), []);
      expect(again.candidates("u1", now)).toEqual(ref.candidates("u1", now));
      expect(again.seeds("u3", now).map((x) => x.item)).toEqual(["p9"]);
    } finally {
      await db.close();
      await rm(dir, { recursive: true, force: true });
    }
  });
});
