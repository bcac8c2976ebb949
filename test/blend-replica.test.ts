import { afterAll, describe, expect, it } from "vitest";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { asyncScheduler } from "rxjs";
import { createStageLogic } from "../runtime/index.js";
import { createStageState, openStateDb } from "../state/store.js";
import type { StageStateInternal } from "../state/index.js";
import { covisitStage } from "../actors/stages/index.js";
import {
  createChangeFeed,
  type ChangeFeed,
  createBlendReplica,
  createBlendAnswers,
  composeView,
  itemWideView,
} from "../actors/serving/index.js";
import { partitionOf } from "../actors/contract/index.js";
import {
  ECOMMERCE,
  defaultBlend,
  defaultSourceSettings,
  seededRandom,
} from "../actors/sources/index.js";
import type { ParsedRecord, EventType } from "../actors/contract/index.js";
import { stageContext } from "./helpers/stage.js";
import { reloaded, sourceStages } from "./helpers/source-stages.js";

/**
 * The blend's replica (actors/serving/blend-replica.ts) fed by the source stages' change stream
 * (actors/serving/blend-changes.ts), pure logic: the history and covisit stages run on in-memory state
 * with their maps tracked, the chunks go to a replica, and its blended answers are compared with
 * the answers over the stages' own views (the one-process path) at the same state.
 */
const P = 2;
const T0 = Date.UTC(2026, 10, 1);
const sources = defaultSourceSettings(ECOMMERCE);
const TYPES: EventType[] = ["view", "view", "view", "click", "cart", "purchase"];

function events(n: number, seed: number): ParsedRecord[] {
  const rnd = seededRandom(seed);
  let progress = -1;
  return Array.from({ length: n }, (_, s) => {
    const ts = T0 + s * 20_000;
    const r: ParsedRecord = {
      id: `e${s}`,
      t: TYPES[Math.floor(rnd() * TYPES.length)]!,
      ts,
      u: `u${Math.floor(rnd() * 30)}`,
      i: `p${Math.floor(rnd() * 40)}`,
      c: `c${Math.floor(rnd() * 4)}`,
      b: "",
      pr: -1,
      r: -1,
      s: s + 1,
      wb: progress,
    };
    progress = Math.max(progress, ts);
    return r;
  });
}

/**
 * The source stages on tracked in-memory state, fed batch by batch as a host feeds them; each
 * instance's state as `initial` gives it (a load), else empty.
 */
function stages(
  feed: ChangeFeed & { track: ReturnType<typeof createChangeFeed>["track"] },
  initial: (id: string) => StageStateInternal = () => createStageState(),
) {
  const s = sourceStages({
    partitions: P,
    preset: ECOMMERCE,
    sources,
    state: initial,
    track: (id, state) => feed.track(id, state),
  });
  return {
    ...s,
    /** The one-process answers: the stages' own views. */
    answers: createBlendAnswers({
      blend: defaultBlend(ECOMMERCE),
      view: (user) =>
        composeView(
          { history: s.history[partitionOf(user, P)]!.logic.view, covisit: s.view() },
          sources,
        ),
      collaborative: () => undefined,
      changes: () => 0,
    }),
  };
}

/** A clock that moves 1 s per reading (the replica rebuilds covisit's view at most every 100 ms). */
const ticking = () => {
  let t = 0;
  return () => (t += 1_000);
};
const users = Array.from({ length: 32 }, (_, x) => `u${x}`);
const row = () => undefined;
const drain = (
  feed: ChangeFeed,
  apply: (c: NonNullable<ReturnType<ChangeFeed["take"]>>) => void,
  maxKeys = 7,
) => {
  let chunks = 0;
  for (let c = feed.take(maxKeys, 2_000); c; c = feed.take(maxKeys, 2_000)) {
    apply(c);
    chunks++;
  }
  return chunks;
};

describe("the blend's replica", () => {
  it("answers as the stages do once it has their changes, chunk by chunk, batch by batch", () => {
    const feed = createChangeFeed();
    const s = stages(feed);
    const replica = createBlendReplica({ preset: "ecommerce", partitions: P, now: ticking() });
    expect(replica.isReady()).toBe(false);
    const log = events(600, 7);
    for (let x = 0; x < log.length; x += 50) {
      s.feed(log.slice(x, x + 50));
      // Some batches pass before the replica hears of them: it catches up with the latest values.
      if ((x / 50) % 3 !== 1) {
        // Histories first, covisit after: kept answers of users whose history moved are not
        // served; the others' are (what a fresh computation on the replica gives now).
        let histories = 0;
        for (
          let c = feed.take(7, 2_000, (id) => id.startsWith("history/"));
          c;
          c = feed.take(7, 2_000, (id) => id.startsWith("history/"))
        ) {
          replica.apply(c);
          histories++;
        }
        if (x > 0) expect(histories).toBeGreaterThan(0);
        for (const u of users)
          expect(replica.answer(u, 10, undefined, row, undefined, 0)).toEqual(
            replica.answer(u, 10, undefined, row),
          );
        drain(feed, (c) => replica.apply(c));
        // Kept answers (a rows version given): only those whose data did not change are served
        // again (a user's own history keeps the others' answers).
        for (const u of users)
          expect(replica.answer(u, 10, undefined, row, undefined, 0)).toEqual(
            s.answers.answer(u, 10, undefined, row),
          );
      }
    }
    drain(feed, (c) => replica.apply(c));
    expect(replica.isReady()).toBe(true);
    let blended = 0;
    for (const u of users) {
      const mine = replica.answer(u, 10, undefined, row);
      expect(mine).toEqual(s.answers.answer(u, 10, undefined, row));
      blended += mine!.items.filter((i) => i.source !== "POPULAR_FALLBACK").length;
      expect(replica.answer(u, 5, { category: "c1" }, row)).toEqual(
        s.answers.answer(u, 5, { category: "c1" }, row),
      );
      expect(replica.recent(u, 5)?.map((r) => r.itemId)).toEqual(
        s.history[partitionOf(u, P)]!.logic.view.history()
          .recent(u, 5)
          .map((r) => r.item),
      );
    }
    // The answers are the blend's, not a popularity list alone (co-visitation's weight is small,
    // so its items are seldom an item's strongest source: any source but popularity counts).
    expect(blended).toBeGreaterThan(0);
    expect(replica.similar("p3", 5, row)).toBeDefined();
  });

  it("decodes again only what changed when covisit's view is built again", () => {
    const feed = createChangeFeed();
    const s = stages(feed);
    const replica = createBlendReplica({ preset: "ecommerce", partitions: P, now: ticking() });
    const log = events(400, 5);
    s.feed(log.slice(0, 399));
    drain(feed, (c) => replica.apply(c));
    for (const u of users) replica.answer(u, 10, undefined, row);
    const first = replica.stats().decoded;
    expect(first).toBeGreaterThan(30);
    // Asked again, nothing changed: nothing is decoded again.
    for (const u of users) replica.answer(u, 10, undefined, row);
    expect(replica.stats().decoded).toBe(first);
    // One more event: covisit's view is built again (the clock moves 1 s a reading), and only
    // the values its changes carried are decoded again (every list read, before).
    s.feed(log.slice(399));
    let changed = 0;
    drain(feed, (c) => {
      for (const m of c.maps) changed += m.puts.length;
      replica.apply(c);
    });
    for (const u of users)
      expect(replica.answer(u, 10, undefined, row)).toEqual(
        s.answers.answer(u, 10, undefined, row),
      );
    expect(changed).toBeLessThan(first / 2);
    expect(replica.stats().decoded - first).toBeLessThanOrEqual(changed);
  });

  it("serves the previous run of a stage until a new run's dump is complete", () => {
    const feed = createChangeFeed();
    const s = stages(feed);
    const replica = createBlendReplica({ preset: "ecommerce", partitions: P, now: ticking() });
    const log = events(300, 11);
    s.feed(log.slice(0, 200));
    drain(feed, (c) => replica.apply(c));
    s.feed(log.slice(200));
    // A restart of covisit/0 from a snapshot of its state now: a new run, dumped in small chunks.
    const restarted = reloaded(s.covisit[0]!.state);
    const state = feed.track("covisit/0", restarted);
    const settings = { preset: ECOMMERCE, sources, partition: 0, partitions: P, ids: s.ids };
    const { ctx } = stageContext(settings, asyncScheduler, state);
    const view = itemWideView(
      [createStageLogic(covisitStage, ctx).view, s.covisit[1]!.logic.view],
      { preset: ECOMMERCE, ...sources.covisit },
    );
    const covisitChunks: NonNullable<ReturnType<ChangeFeed["take"]>>[] = [];
    drain(
      feed,
      (c) => (c.instance === "covisit/0" ? covisitChunks.push(c) : replica.apply(c)),
      1_000,
    );
    expect(covisitChunks.length).toBeGreaterThan(1);
    expect(covisitChunks[0]!.reset).toBe(true);
    expect(covisitChunks.slice(0, -1).every((c) => c.complete === undefined)).toBe(true);
    expect(covisitChunks.at(-1)!.complete).toBe(true);
    const before = users.map((u) => replica.answer(u, 10, undefined, row));
    replica.apply(covisitChunks[0]!);
    // Half a dump serves nothing of it: the covisit served is still the first run's.
    expect(users.map((u) => replica.answer(u, 10, undefined, row))).toEqual(before);
    for (const c of covisitChunks.slice(1)) replica.apply(c);
    expect(users.map((u) => replica.answer(u, 10, undefined, row))).not.toEqual(before);
    const answers = createBlendAnswers({
      blend: defaultBlend(ECOMMERCE),
      view: (user) =>
        composeView(
          { history: s.history[partitionOf(user, P)]!.logic.view, covisit: view },
          sources,
        ),
      collaborative: () => undefined,
      changes: () => 0,
    });
    for (const u of users)
      expect(replica.answer(u, 10, undefined, row)).toEqual(answers.answer(u, 10, undefined, row));
  });
});

describe("the blend's replica from the snapshots it read itself", () => {
  const dirs: string[] = [];
  afterAll(async () => {
    for (const d of dirs) await rm(d, { recursive: true, force: true });
  });
  const ids = [
    ...Array.from({ length: P }, (_, p) => `history/${p}`),
    ...Array.from({ length: P }, (_, q) => `covisit/${q}`),
  ];
  /** Every instance's snapshot as the state store loads it (lazy cold records), by id. */
  const loadAll = async (dir: string) => {
    const db = await openStateDb(dir);
    const out = new Map<string, StageStateInternal>();
    for (const id of ids) {
      const [stage, p] = id.split("/");
      out.set(id, await db.instance(stage!, Number(p)).load());
    }
    await db.close();
    return out;
  };

  it("is ready with no dump: the ingest process's first runs send only what changed since", async () => {
    const dir = await mkdtemp(join(tmpdir(), "blend-replica-base-"));
    dirs.push(dir);
    // The stages of an earlier run, snapshotted to a state store.
    const before = stages(createChangeFeed());
    const log = events(500, 13);
    before.feed(log.slice(0, 350));
    const db = await openStateDb(dir);
    const states = new Map<string, StageStateInternal>([
      ...[...before.history, ...before.covisit].map((x) => [x.id, x.state] as const),
    ]);
    for (const [id, state] of states) {
      const [stage, p] = id.split("/");
      await db.instance(stage!, Number(p)).write(state);
    }
    await db.close();
    // The serving process reads them, before the ingest process runs: ready, no chunk applied.
    const replica = createBlendReplica({ preset: "ecommerce", partitions: P, now: ticking() });
    const tokens: Record<string, string> = {};
    for (const [id, state] of await loadAll(dir)) {
      tokens[id] = `read-1.${id}`;
      replica.adoptBase(id, tokens[id], state);
    }
    expect(replica.isReady()).toBe(true);
    expect(replica.stats().chunks).toBe(0);
    for (const u of users)
      expect(replica.answer(u, 10, undefined, row)).toEqual(
        before.answers.answer(u, 10, undefined, row),
      );
    // The ingest process loads the same snapshots; its first runs name the read, then send
    // their changes only.
    const loaded = await loadAll(dir);
    const feed = createChangeFeed(tokens);
    const s = stages(feed, (id) => loaded.get(id)!);
    s.feed(log.slice(350, 360));
    const chunks: NonNullable<ReturnType<ChangeFeed["take"]>>[] = [];
    drain(feed, (c) => chunks.push(c), 1_000);
    expect(chunks.some((c) => c.reset)).toBe(false);
    for (const id of ids) {
      const first = chunks.find((c) => c.instance === id)!;
      expect(first.base).toBe(tokens[id]);
      expect(first.maps).toEqual([]);
    }
    let puts = 0;
    for (const c of chunks) for (const m of c.maps) puts += m.puts.length;
    let held = 0;
    for (const st of loaded.values()) held += st.keyCount();
    expect(puts).toBeGreaterThan(0);
    expect(puts).toBeLessThan(held / 2);
    for (const c of chunks) replica.apply(c);
    let blended = 0;
    for (const u of users) {
      const mine = replica.answer(u, 10, undefined, row);
      expect(mine).toEqual(s.answers.answer(u, 10, undefined, row));
      blended += mine!.items.filter((i) => i.source !== "POPULAR_FALLBACK").length;
      expect(replica.answer(u, 5, { category: "c2" }, row)).toEqual(
        s.answers.answer(u, 5, { category: "c2" }, row),
      );
      expect(replica.recent(u, 5)?.map((r) => r.itemId)).toEqual(
        s.history[partitionOf(u, P)]!.logic.view.history()
          .recent(u, 5)
          .map((r) => r.item),
      );
    }
    expect(blended).toBeGreaterThan(0);
    // More batches, their changes applied as they come.
    for (let x = 360; x < log.length; x += 40) {
      s.feed(log.slice(x, x + 40));
      drain(feed, (c) => replica.apply(c));
      for (const u of users)
        expect(replica.answer(u, 10, undefined, row, undefined, 0)).toEqual(
          s.answers.answer(u, 10, undefined, row),
        );
    }
    // A later run of an instance (a restart from a newer snapshot) dumps, as before.
    feed.track("history/0", reloaded(s.history[0]!.state));
    const again = feed.take(1_000, 2_000, (id) => id === "history/0");
    expect(again?.reset).toBe(true);
    expect(again?.base).toBeUndefined();
  });

  it("ignores a read the ingest process did not start from, and serves the newer run's dump", async () => {
    const dir = await mkdtemp(join(tmpdir(), "blend-replica-base-"));
    dirs.push(dir);
    const replica = createBlendReplica({ preset: "ecommerce", partitions: P, now: ticking() });
    for (const id of ids) replica.adoptBase(id, `read-1.${id}`, createStageState());
    // A run that names another read (not this replica's) changes nothing.
    replica.apply({
      instance: "covisit/0",
      run: "x.1",
      base: "read-0.covisit/0",
      complete: true,
      maps: [],
    });
    replica.apply({
      instance: "covisit/0",
      run: "x.1",
      maps: [{ map: "item-categories", puts: [["p1", "c1"]], dels: [] }],
    });
    expect(replica.stats().keys).toBe(0);
    // A dump replaces the read.
    const feed = createChangeFeed();
    const s = stages(feed);
    s.feed(events(200, 3));
    drain(feed, (c) => replica.apply(c));
    for (const u of users)
      expect(replica.answer(u, 10, undefined, row)).toEqual(
        s.answers.answer(u, 10, undefined, row),
      );
  });
});
