/**
 * Co-visitation's CPU per event (`add`) and per candidates call (20 seeds, as the prequential
 * scorer and serving ask), this tree against another tree's actors/sources/covisit.ts in the same
 * process: the same generated events go to both, in alternating chunks, so load from other work
 * on the machine falls on both alike (sources-micro and step 2 run one version per process, and
 * at load 15-19 their pairs differed by more than the change measured).
 *
 *   npx tsx bench/covisit-ab.ts OTHER_TREE [events=100000]
 *
 * OTHER_TREE is a checkout (e.g. `git worktree add --detach /tmp/base main`, then `npm ci` there).
 */
import { resolve } from "node:path";
import { createCovisit, type SimilarItemsSource } from "../actors/sources/covisit.js";
import { defaultSourceSettings } from "../actors/sources/defaults.js";
import { ECOMMERCE } from "../actors/sources/preset.js";
import type { SourceEvent } from "../actors/sources/types.js";
import { createGenerator, DEFAULT_GENERATOR } from "./generator.js";

const [other, eventsArg] = process.argv.slice(2);
if (!other) throw new Error("usage: covisit-ab.ts OTHER_TREE [events]");
const N = Number(eventsArg ?? 100_000);
const CHUNK = 5000;
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
const cpu = () => {
  const c = process.cpuUsage();
  return c.user + c.system;
};
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
