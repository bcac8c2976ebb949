/**
 * Training time and memory of implicit ALS at a given number of users: synthetic
 * interactions from the bench generator (exactly `users` users, `perUser` events each, Zipf
 * items), the matrix built as the engine's sources build it, trained in a worker thread while this
 * thread measures its event-loop delay.
 *
 *   npx tsx bench/als-train.ts 100000 [perUser=10] [items=50000] [rank=64] [iterations=15]
 */
import {
  createRatingsBuilder,
  createAlsIndex,
  serialiseModel,
  trainInWorker,
  IMPLICIT_DEFAULTS,
  ECOMMERCE,
} from "../actors/sources/index.js";
import { createGenerator, DEFAULT_GENERATOR } from "./generator.js";

const [users = 100_000, perUser = 10, items = 50_000, rank = 64, iterations = 15] = process.argv
  .slice(2)
  .map(Number);
const mb = (b: number) => `${(b / 1e6).toFixed(0)} MB`;

const g = createGenerator(
  { ...DEFAULT_GENERATOR, users, items, userDist: "cycle", start: Date.UTC(2026, 0, 1) },
  users * perUser,
);
const heap0 = process.memoryUsage().heapUsed;
let t = performance.now();
const b = createRatingsBuilder();
for (let k = 0; k < users * perUser; k++) {
  const e = g.next();
  const w = ECOMMERCE.weight({ u: e.user, i: e.item, t: e.type as "view", ts: e.ts, c: "", r: -1 });
  if (w > 0) b.add(e.user, e.item, w);
}
const ratings = b.build();
const buildMs = performance.now() - t;
const matrixBytes =
  ratings.userPtr.byteLength + ratings.userCols.byteLength + ratings.userVals.byteLength * 3;
console.log(
  `${users} users, ${ratings.items.length} items, ${b.nnz} non-zeros; matrix built in ${(buildMs / 1000).toFixed(1)} s ` +
    `(typed arrays ${mb(matrixBytes)}; builder heap ${mb(process.memoryUsage().heapUsed - heap0)})`,
);

let worstLag = 0;
let last = performance.now();
const lag = setInterval(() => {
  const now = performance.now();
  worstLag = Math.max(worstLag, now - last - 10);
  last = now;
}, 10);
t = performance.now();
const cpu0 = process.cpuUsage();
const settings = { ...IMPLICIT_DEFAULTS, rank, iterations };
const model = await trainInWorker(
  { ratings, settings },
  {
    onIteration: (it) =>
      process.stdout.write(`  iteration ${it}: ${((performance.now() - t) / 1000).toFixed(1)} s\n`),
  },
);
const trainMs = performance.now() - t;
const cpu = process.cpuUsage(cpu0);
const cpuS = (cpu.user + cpu.system) / 1e6;
clearInterval(lag);
const index = createAlsIndex(model, b);
const bytes = serialiseModel(model);
// A served model keeps no user vectors: the first answer of each user solves one from their row
// (~perUser items) against the item factors.
const asked = Array.from({ length: Math.min(users, 1000) }, (_, u) => ratings.users[u]!);
t = performance.now();
for (const u of asked) index.vector(u);
const foldUs = ((performance.now() - t) * 1000) / asked.length;
t = performance.now();
for (const u of asked.slice(0, 100)) index.candidates(u, 10);
const serveMs = (performance.now() - t) / 100;
console.log(
  `rank ${rank}, ${iterations} iterations: trained in ${(trainMs / 1000).toFixed(1)} s, ` +
    `${cpuS.toFixed(1)} s of CPU (worker thread; ` +
    `event loop worst delay ${worstLag.toFixed(0)} ms); item factors ${mb(index.factorBytes)}, ` +
    `serialised ${mb(bytes.byteLength)} (no user factors); ` +
    `fold-in ${foldUs.toFixed(0)} µs per user; top 10 over the catalogue ${serveMs.toFixed(1)} ms`,
);
