import { describe, expect, it } from "vitest";
import { testStateDb } from "./helpers/state-db.js";
import type { StageStateInternal } from "../state/stage-state.js";
import type { Envelope, InputMessage } from "../actors/host/index.js";
import type { EventType } from "../actors/contract/index.js";
import type { WindowOutput, WindowRecord } from "../actors/stages/index.js";
import {
  cellCodec,
  type InterestHandler,
  type ProfileRecord,
  interestCellKey as cellKey,
} from "../actors/stages/index.js";
import { loadInterestHandler } from "../actors/plan/index.js";
import { seededRandom } from "../actors/sources/index.js";
import { MINUTE } from "../actors/contract/index.js";
import { fakeOutput } from "./helpers/stage.js";

/**
 * Interest-ranking keeps its window cells as bytes (a codec map, cold keys in
 * state/cold-index.ts), most users' aggregates packed into a number, and each window's cell keys
 * as joined runs. The profiles must be what the cells give, computed here from a plain Map of
 * the cells, after any mix of upserts, category changes, expiries, snapshots and restarts on
 * real LevelDB, and from a snapshot of the earlier layout (cells as a plain JSON map).
 */

const enc = new TextEncoder();
const T0 = Date.UTC(2024, 0, 1, 10, 0, 0);
const W = 5 * MINUTE;
const OPTS = { partition: 0, horizonMs: 8 * W, windowMs: W, topCategories: 3 };
const TYPES: EventType[] = ["view", "click", "cart", "purchase"];

interface ModelCell {
  w: number;
  t: string;
  u: string;
  i: string;
  n: number;
  c: string;
}

/** Each user's profile as the live cells give it (DESIGN §3.4); absent when it has nothing. */
function modelProfiles(cells: Map<string, ModelCell>) {
  const byUser = new Map<string, { cats: Map<string, number>; pur: Map<string, number> }>();
  for (const x of cells.values()) {
    let a = byUser.get(x.u);
    if (!a) byUser.set(x.u, (a = { cats: new Map(), pur: new Map() }));
    if (x.c) a.cats.set(x.c, (a.cats.get(x.c) ?? 0) + x.n);
    if (x.t === "purchase" && x.n > 0)
      a.pur.set(x.i, Math.max(a.pur.get(x.i) ?? -Infinity, x.w + W));
  }
  const out = new Map<string, { top: [string, number][]; pur: [string, number][] }>();
  for (const [u, a] of byUser) {
    const top = [...a.cats]
      .filter(([, n]) => n !== 0)
      .sort((x, y) => y[1] - x[1] || (x[0] < y[0] ? -1 : x[0] > y[0] ? 1 : 0))
      .slice(0, OPTS.topCategories);
    const pur = [...a.pur].sort((x, y) => (x[0] < y[0] ? -1 : 1));
    if (top.length > 0 || pur.length > 0) out.set(u, { top, pur });
  }
  return out;
}

describe("interest-ranking's compact cells and aggregates", () => {
  const dbs = testStateDb("reco-interest-");

  const run = async (legacy: boolean) => {
    let db = await dbs.open({ checkpointMinKeys: 400 });
    const random = seededRandom(legacy ? 11 : 5);
    const cells = new Map<string, ModelCell>();
    const keyOf = (x: { w: number; t: string; u: string; i: string }) =>
      JSON.stringify([x.w, x.t, x.u, x.i]);
    let seq = 0;
    let progress = T0;
    if (legacy) {
      // A snapshot of the earlier layout: cells in a plain map (JSON values), no other state.
      const store = db.instance("interest-ranking", 0);
      const old = await store.load();
      const plain = old.map<[number, string]>("cell");
      for (let x = 0; x < 300; x++) {
        const c: ModelCell = {
          w: T0 + Math.floor(random() * 4) * W,
          t: TYPES[x % 4]!,
          u: `u${x % 60}`,
          i: `i${x % 17}`,
          n: 1 + (x % 5),
          c: x % 7 === 0 ? "" : `cat${x % 4}`,
        };
        plain.set(keyOf(c), [c.n, c.c]);
        cells.set(keyOf(c), c);
      }
      await store.write(old);
    }
    let store = db.instance("interest-ranking", 0);
    let state: StageStateInternal = await store.load();
    let { out, rec } = fakeOutput();
    let h: InterestHandler = await loadInterestHandler(state, out, OPTS);
    const check = (users: Iterable<string>) => {
      const model = modelProfiles(cells);
      for (const u of users) {
        const p = h.profile(u);
        const m = model.get(u);
        expect(p && { top: p.top, pur: p.pur }, u).toEqual(m);
      }
    };
    const allUsers = Array.from({ length: 80 }, (_, x) => `u${x}`);
    check(allUsers);
    for (let step = 0; step < 120; step++) {
      const recs: WindowOutput[] = [];
      const before = modelProfiles(cells);
      progress += Math.floor(random() * 0.7 * W);
      for (let x = 0; x < 40; x++) {
        const r = random();
        const w = progress - Math.floor(random() * 6) * W;
        const u = `u${Math.floor(random() * 80)}`;
        // Mostly a few categories; some of 1,100 (past what packs), some none; counts up to
        // past what a packed count holds.
        const c =
          r < 0.1 ? "" : r < 0.2 ? `many${Math.floor(random() * 1100)}` : `cat${Math.floor(r * 5)}`;
        const n =
          random() < 0.03 ? 2 ** 21 + Math.floor(random() * 10) : 1 + Math.floor(random() * 4);
        const cell: WindowRecord = {
          w: w - (w % W),
          u,
          i: `i${Math.floor(random() * 17)}`,
          t: TYPES[Math.floor(random() * 4)]!,
          n,
          c,
          b: "",
          pr: -1,
        };
        recs.push(cell);
        if (random() < 0.1) recs.push({ close: cell.w } as unknown as WindowOutput);
      }
      // Once, more cells in one window than a run of joined keys holds (expired later).
      if (step === 30)
        for (let x = 0; x < 4500; x++)
          recs.push({
            w: progress - (progress % W),
            u: `u${x % 80}`,
            i: `j${x}`,
            t: "view",
            n: 1,
            c: "bulk",
            b: "",
            pr: -1,
          });
      seq++;
      const env: Envelope<WindowOutput> = { upTo: seq, wm: progress, recs };
      const msg: InputMessage = {
        seq,
        subject: "reco.window.0",
        data: enc.encode(JSON.stringify(env)),
        headers: {},
      };
      const emitted = rec.emits.length;
      h.handle(msg, seq - 1);
      // The model: upserts, then cells of windows that left the horizon dropped.
      for (const r of recs)
        if (!("close" in r)) cells.set(keyOf(r as WindowRecord), { ...(r as WindowRecord) });
      for (const [k, x] of cells) if (x.w + W <= progress - OPTS.horizonMs) cells.delete(k);
      const sent = new Map(
        rec.emits.slice(emitted).map(([, p]) => [(p as ProfileRecord).u, p as ProfileRecord]),
      );
      // Exactly the users whose profile changed are sent, each with what the cells give.
      const model = modelProfiles(cells);
      for (const u of allUsers) {
        const m = model.get(u);
        const b = before.get(u);
        const changed = JSON.stringify(m) !== JSON.stringify(b);
        expect(sent.has(u), `${u} at step ${step}`).toBe(changed);
        if (changed)
          expect({ top: sent.get(u)!.top, pur: sent.get(u)!.pur }).toEqual(
            m ?? { top: [], pur: [] },
          );
      }
      if (step % 3 === 2) await store.write(state);
      if (step % 17 === 8) {
        await store.write(state);
        db = await dbs.open({ checkpointMinKeys: 400 });
        store = db.instance("interest-ranking", 0);
        state = await store.load();
        ({ out, rec } = fakeOutput());
        h = await loadInterestHandler(state, out, OPTS);
        check(allUsers);
      }
    }
    check(allUsers);
    return { state, cellsHeld: cells.size };
  };

  it("give the profiles a plain map of the cells gives, across snapshots and restarts", async () => {
    const { state, cellsHeld } = await run(false);
    expect(state.map("cell").size).toBe(cellsHeld);
  });

  it("rebuild their aggregates at a load without keeping the cells decoded", async () => {
    const db = await dbs.open();
    const store = db.instance("interest-ranking", 0);
    const state = await store.load();
    const { out } = fakeOutput();
    const h = await loadInterestHandler(state, out, OPTS);
    const recs: WindowOutput[] = [];
    for (let x = 0; x < 500; x++)
      recs.push({
        w: T0,
        u: `u${x}`,
        i: "p",
        t: "view",
        n: 1 + (x % 3),
        c: "books",
        b: "",
        pr: -1,
      });
    const env: Envelope<WindowOutput> = { upTo: 1, wm: T0, recs };
    h.handle(
      { seq: 1, subject: "reco.window.0", data: enc.encode(JSON.stringify(env)), headers: {} },
      0,
    );
    await store.write(state);
    await store.write(state);
    await store.write(state);
    const loaded = await db.instance("interest-ranking", 0).load();
    const h2 = await loadInterestHandler(loaded, fakeOutput().out, OPTS);
    expect(h2.profile("u4")?.top).toEqual([["books", 2]]);
    // A cell held decoded is the same object at each peek; a cold one is decoded anew.
    const cells = loaded.map<[number, string]>("cell", { codec: cellCodec });
    const key = cellKey(T0, "view", "u7", "p");
    expect(cells.peek?.(key)).toEqual([2, "books"]);
    expect(cells.peek?.(key)).not.toBe(cells.peek?.(key));
  });

  it("load a snapshot of plain cells and move it to bytes", async () => {
    const { state, cellsHeld } = await run(true);
    expect(state.map("cell").size).toBe(cellsHeld);
  });
});
