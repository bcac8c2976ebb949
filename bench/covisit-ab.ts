/**
 * Co-visitation's CPU per event (`add`) and per candidates call (20 seeds, as serving asks), this tree against another tree's actors/sources/covisit.ts in the same
 * process: the same generated events go to both, in alternating chunks, so load from other work
 * on the machine falls on both alike (sources-micro and step 2 run one version per process, and
 * at load 15-19 their pairs differed by more than the change measured).
 *
 * With `stage`, the whole covisit stage as the engine runs it with the blend (on a stage state,
 * batches of 500, a snapshot delta taken and serialised every 20k events, as
 * bench/sources-micro.ts does) of both trees, alternating chunks of 5k events: µs of CPU per
 * event of each, the part in snapshots, and both trees' digests (sources-micro's: two versions
 * that must give the same bits print the same).
 *
 *   npx tsx bench/covisit-ab.ts OTHER_TREE [events=100000] [add|stage]
 *
 * OTHER_TREE is a checkout (e.g. `git worktree add --detach /tmp/base main`, then `npm ci` there,
 * or a symlink of this tree's node_modules).
 */
import { createHash } from "node:crypto";
import { resolve } from "node:path";
import { asyncScheduler } from "rxjs";
import {
  createCovisit,
  type SimilarItemsSource,
  defaultSourceSettings,
  ECOMMERCE,
} from "../actors/sources/index.js";
import type { SourceEvent } from "../actors/sources/index.js";
import { createGenerator, DEFAULT_GENERATOR } from "./generator.js";

const [other, eventsArg, mode = "add"] = process.argv.slice(2);
if (!other) throw new Error("usage: covisit-ab.ts OTHER_TREE [events] [add|stage]");
const N = Number(eventsArg ?? 100_000);
const CHUNK = 5000;
const cpu = () => {
  const c = process.cpuUsage();
  return c.user + c.system;
};
if (mode === "stage") {
  await stageAB(other, N);
  process.exit(0);
}
const CALLS = 200;
const base = (await import(resolve(other, "actors/sources/covisit.ts"))) as {
  createCovisit: typeof createCovisit;
};

const s = defaultSourceSettings(ECOMMERCE);
const g = createGenerator({ ...DEFAULT_GENERATOR, start: Date.UTC(2026, 10, 1) }, N);
const events: SourceEvent[] = [];
for (let x = 0; x < N; x++) {
  const e = g.next();
  events.push({ u: e.user, i: e.item, t: e.type as SourceEvent["t"], ts: e.ts, c: "", r: -1 });
}
const runs: { name: string; c: SimilarItemsSource; add: number; cand: number }[] = [
  { name: "other", c: base.createCovisit({ preset: ECOMMERCE, ...s.covisit }), add: 0, cand: 0 },
  { name: "this", c: createCovisit({ preset: ECOMMERCE, ...s.covisit }), add: 0, cand: 0 },
];
for (let off = 0; off < N; off += CHUNK) {
  const order = (off / CHUNK) % 2 === 0 ? runs : [...runs].reverse();
  for (const r of order) {
    let t = cpu();
    for (let x = off; x < off + CHUNK; x++) {
      r.c.add(events[x]!);
      if (x % 500 === 499) r.c.flush(); // a stage flushes after each batch
    }
    r.add += cpu() - t;
    const now = events[off + CHUNK - 1]!.ts;
    t = cpu();
    for (let q = 0; q < CALLS; q++) {
      const seeds = [];
      for (let z = 0; z < 20; z++)
        seeds.push({ item: events[off + ((q * 37 + z * 101) % CHUNK)]!.i, score: 20 - z, why: "" });
      r.c.candidates(seeds, now + q, 100); // another `now` each call: nothing reused
    }
    r.cand += cpu() - t;
  }
}
for (const r of runs)
  console.log(
    `${r.name}: add ${(r.add / N).toFixed(2)} µs/event, candidates ` +
      `${(r.cand / ((N / CHUNK) * CALLS)).toFixed(1)} µs/call (20 seeds)`,
  );

/** The covisit stage of two trees, alternating chunks of the same records. */
async function stageAB(otherTree: string, n: number) {
  const BATCH = 500;
  const SNAPSHOT_EVERY = 20_000;
  const records: Record<string, unknown>[] = [];
  const gen = createGenerator({ ...DEFAULT_GENERATOR, start: Date.UTC(2026, 10, 1) }, n);
  let wb = -1;
  for (let k = 0; k < n; k++) {
    const e = gen.next();
    records.push({
      id: e.id,
      t: e.type,
      ts: e.ts,
      u: e.user,
      i: e.item,
      c: e.category.split(".")[0]!,
      b: e.brand,
      pr: e.price,
      r: -1,
      s: k + 1,
      wb,
    });
    wb = Math.max(wb, e.ts);
  }
  interface Tree {
    name: string;
    run: { push(b: unknown): void; view: unknown; restoreAll(): void };
    state: { takeDelta(): { maps: [string, unknown[], string[]][]; binary: Set<string> } };
    input: unknown[];
    cpu: number;
    snap: number;
  }
  const load = async (name: string, dir: string): Promise<Tree> => {
    const imp = (p: string) => import(resolve(dir, p)) as Promise<Record<string, never>>;
    const { covisitStage } = await imp("actors/stages/covisit-stage.ts");
    const { defaultSourceSettings } = await imp("actors/sources/defaults.ts");
    const { ECOMMERCE: preset } = await imp("actors/sources/preset.ts");
    const { startStage } = await imp("runtime/index.ts");
    const { createStageState } = await imp("state/index.ts");
    const sources = (defaultSourceSettings as (p: unknown) => { covisit: object })(preset);
    // A tree whose covisit stage runs per item partition takes pair records (one partition
    // here), paired beforehand by co-visitation's user side (not timed); an older one, events.
    const { createCovisitUsers, memStore } = await imp("actors/sources/index.ts");
    type Users = { together(e: unknown): { items: string[]; weights: number[] } | undefined };
    const pairing = createCovisitUsers as unknown as ((o: object, s: object) => Users) | undefined;
    const users = pairing?.(
      { preset, ...sources.covisit },
      { recent: (memStore as () => unknown)() },
    );
    const input = users
      ? records.map((r) => {
          const t = users.together({ ...r, t: r.t, r: -1 });
          return { s: r.s, i: r.i, ts: r.ts, n: t?.items ?? [], w: t?.weights ?? [], e: r };
        })
      : records;
    const settings = { preset, sources, partition: 0, partitions: 1 };
    const state = (createStageState as () => Tree["state"])();
    const run = (startStage as (...a: unknown[]) => Tree["run"])(
      covisitStage,
      { name: "covisit", state, settings, scheduler: asyncScheduler, count: () => undefined },
      () => undefined,
    );
    run.restoreAll();
    return { name, run, state, input, cpu: 0, snap: 0 };
  };
  const trees = [await load("other", otherTree), await load("this", ".")];
  for (let off = 0; off < n; off += CHUNK) {
    // Alternating, and so that the chunks with a snapshot alternate too.
    const first = (off / CHUNK + Math.floor(off / SNAPSHOT_EVERY)) % 2;
    const order = first === 0 ? trees : [...trees].reverse();
    for (const t of order) {
      const c0 = cpu();
      for (let x = off; x < Math.min(n, off + CHUNK); x += BATCH) {
        const batch = t.input.slice(x, x + BATCH);
        t.run.push({
          records: batch,
          position: { from: x, upTo: x + batch.length },
          progress: { from: -1, to: -1 },
        });
        if ((x + BATCH) % SNAPSHOT_EVERY === 0) {
          const s0 = cpu();
          const delta = t.state.takeDelta();
          // As state/store.ts writes it: stored-form maps as their binary entry, the rest as JSON.
          JSON.stringify(delta.maps.filter(([m]) => !delta.binary.has(m)));
          t.snap += cpu() - s0;
        }
      }
      t.cpu += cpu() - c0;
    }
  }
  for (const t of trees) {
    const v = t.run.view as {
      covisit(): { similar(i: string, now: number, n: number): unknown };
      trending(): { top(now: number, n: number): unknown };
      popular(): { top(now: number, n: number): unknown };
    };
    const h = createHash("sha256");
    for (let i = 0; i < DEFAULT_GENERATOR.items; i++)
      h.update(JSON.stringify(v.covisit().similar(`p${i}`, wb, 200)));
    for (const c of [v.trending(), v.popular()])
      h.update(JSON.stringify([c.top(wb, 100), c.top(wb, 3000)]));
    console.log(
      `${t.name}: ${(t.cpu / n).toFixed(1)} µs of CPU per event (snapshots ${(t.snap / n).toFixed(1)}); ` +
        `covisit digest ${h.digest("hex").slice(0, 16)}`,
    );
  }
}
