/**
 * CPU per event of the covisit stage (co-visitation's item side and the item counters) that bench
 * step 2's profile is heavy with, without NATS, hops or other stages: the bench generator's
 * events (step 2's distribution), paired by co-visitation's user side beforehand (as the history
 * stages do, not timed), pushed as one item partition's pair records through the stage's logic
 * in batches of 500, on a stage state, with a snapshot delta taken and
 * serialised (as state/store.ts does) every `snapshotEvery` events. Prints µs of CPU per event,
 * the part spent in snapshots, the delta's megabytes per map and, with `digest`, a hash of every
 * item's similar items and of the trending and popular lists (two versions of the code that must
 * give the same bits print the same digest). Stable where step 2 is noisy (a shared machine); run
 * under `--cpu-prof` to see where the time goes.
 *
 * `RECENT_PER_USER` sets co-visitation's recent items per user (the ecommerce default is 10;
 * the digest with 30, covisit dbf6ddaa7c358004, is that of 30).
 *
 *   [RECENT_PER_USER=10] npx tsx bench/sources-micro.ts [events=100000] [snapshotEvery=20000] [digest]
 */
import { createHash } from "node:crypto";
import { asyncScheduler } from "rxjs";
import { covisitStage, type CovisitView } from "../actors/stages/index.js";
import type { ParsedRecord, EventType, PairRecord } from "../actors/contract/index.js";
import {
  createCovisitUsers,
  defaultSourceSettings,
  ECOMMERCE,
  memStore,
  sourceEventOf,
} from "../actors/sources/index.js";
import { startStage } from "../runtime/index.js";
import { createStageState } from "../state/index.js";
import { createGenerator, DEFAULT_GENERATOR } from "./generator.js";

const args = process.argv.slice(2);
const events = Number(args[0] ?? 100_000);
const snapshotEvery = Number(args[1] ?? 20_000);
const digest = args[2] === "digest";
const BATCH = 500;

const g = createGenerator({ ...DEFAULT_GENERATOR, start: Date.UTC(2026, 10, 1) }, events);
let wb = -1;
const records: ParsedRecord[] = [];
for (let k = 0; k < events; k++) {
  const e = g.next();
  records.push({
    id: e.id,
    t: e.type as EventType,
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
const sources = defaultSourceSettings(ECOMMERCE);
if (process.env.RECENT_PER_USER)
  sources.covisit = { ...sources.covisit, recentPerUser: Number(process.env.RECENT_PER_USER) };
// Co-visitation's user side, as the history stages run it: every item in one partition.
const users = createCovisitUsers({ preset: ECOMMERCE, ...sources.covisit }, { recent: memStore() });
const pairs: PairRecord[] = records.map((r) => {
  const t = users.together(sourceEventOf(r, ECOMMERCE));
  return { s: r.s, i: r.i, ts: r.ts, n: t?.items ?? [], w: t?.weights ?? [], e: r };
});
{
  const name = "covisit";
  const state = createStageState();
  const run = startStage(
    covisitStage,
    {
      name,
      state,
      settings: { preset: ECOMMERCE, sources, partition: 0, partitions: 1 },
      scheduler: asyncScheduler,
      count: () => undefined,
    },
    () => undefined,
  );
  run.restoreAll();
  const perMap = new Map<string, number>();
  let snapshotMs = 0;
  const c0 = process.cpuUsage();
  for (let x = 0; x < events; x += BATCH) {
    const batch = pairs.slice(x, x + BATCH);
    run.push({
      records: batch,
      position: { from: x, upTo: x + batch.length },
      progress: { from: -1, to: -1 },
    });
    if ((x + BATCH) % snapshotEvery === 0) {
      const t = performance.now();
      const delta = state.takeDelta();
      // As state/store.ts writes it: stored-form maps as their binary entry, the rest as JSON.
      JSON.stringify(delta.maps.filter(([m]) => !delta.binary.has(m)));
      snapshotMs += performance.now() - t;
      for (const [map, puts] of delta.maps) {
        let bytes = 0;
        if (!delta.binary.has(map)) bytes = JSON.stringify(puts).length;
        else
          for (let y = 1; y < puts.length; y += 2) {
            const v = puts[y];
            bytes += typeof v === "string" ? v.length : (v as Uint8Array).length;
          }
        perMap.set(map, (perMap.get(map) ?? 0) + bytes);
      }
    }
  }
  const c = process.cpuUsage(c0);
  const maps = [...perMap]
    .sort((a, b) => b[1] - a[1])
    .slice(0, 5)
    .map(([m, bytes]) => `${m} ${(bytes / 1e6).toFixed(1)} MB`)
    .join(", ");
  console.log(
    `${name}: ${((c.user + c.system) / events).toFixed(1)} µs of CPU per event ` +
      `(snapshots ${((snapshotMs * 1000) / events).toFixed(1)}), ${state.keyCount()} keys; deltas: ${maps}`,
  );
  if (digest) {
    const v = run.view as CovisitView;
    const h = createHash("sha256");
    for (let i = 0; i < DEFAULT_GENERATOR.items; i++)
      h.update(JSON.stringify(v.covisit().similar(`p${i}`, wb, 200)));
    for (const c of [v.trending(), v.popular()])
      h.update(JSON.stringify([c.top(wb, 100), c.top(wb, 3000)]));
    console.log(`covisit digest: ${h.digest("hex").slice(0, 16)}`);
  }
}
