/**
 * CPU of one blended answer, without gRPC, NATS or other load: the bench generator's events fed
 * to the candidate sources (as the recommender stage feeds them), an implicit ALS model trained
 * on them, then `blendAnswer` for many distinct users (known ones in random order, and unknown
 * ones), timed. Stable where step 4 is noisy (a shared machine); run under `--cpu-prof` to see
 * where the time goes.
 *
 *   npx tsx bench/serve-micro.ts [events=50000] [calls=20000] [unknownShare=0.1] [fedPerAnswer=3]
 *
 * SERVE_MICRO_ONLY=ingest runs the last figure alone (what a profile of step 4b's case wants).
 *
 * The last figure is step 4b's case: `fedPerAnswer` more events fed before each answer (10k
 * events/s against ~3k answers/s), so every answer reads sources that changed since the last one
 * (no cache keyed by the data's version or by event time hits), and each answer is also encoded
 * as GetRecommendations' response bytes (connectors/grpc), as the server does. Its line ends with
 * a digest of every response's bytes: a change that must not change answers keeps it.
 */
import { createHash } from "node:crypto";
import { blendAnswer } from "../actors/serving/index.js";
import type { RecommenderView } from "../actors/serving/index.js";
import {
  trainAls,
  defaultBlend,
  defaultSourceSettings,
  ECOMMERCE,
  createRecommender,
} from "../actors/sources/index.js";
import type { SourceEvent } from "../actors/sources/index.js";
import type { EventType } from "../actors/contract/index.js";
import { createGenerator, DEFAULT_GENERATOR, rng32 } from "./generator.js";
import { toRecommendationsResponse } from "../connectors/grpc/codec.js";
import { encodeRecommendationsResponse } from "../connectors/grpc/response-bytes.js";

const [events = 50_000, calls = 20_000, unknownShare = 0.1, fedPerAnswer = 3] = process.argv
  .slice(2)
  .map(Number);

const settings = defaultSourceSettings(ECOMMERCE);
const rec = createRecommender(ECOMMERCE, settings);
const touched = new Map<string, Set<string>>();
const categories = new Map<string, string>();
// The events of the last figure come after the first `events`, in the same stream of time.
const extra = calls * fedPerAnswer;
const g = createGenerator(
  // A fixed start: the same events, so the same answers (the digest below) at every run.
  { ...DEFAULT_GENERATOR, start: Date.UTC(2026, 0, 1) },
  events + extra,
);
let progress = -1;
const feedOne = () => {
  const f = g.next();
  const e: SourceEvent = {
    u: f.user,
    i: f.item,
    t: f.type as EventType,
    ts: f.ts,
    c: f.category,
    r: -1,
  };
  rec.add(e);
  let s = touched.get(e.u);
  if (!s) touched.set(e.u, (s = new Set()));
  s.add(e.i);
  categories.set(e.i, e.c);
  progress = Math.max(progress, e.ts);
};
let t = performance.now();
for (let k = 0; k < events; k++) feedOne();
const feedMs = performance.now() - t;
t = performance.now();
rec.setImplicit(trainAls(rec.implicitRatings(), settings.implicit!));
const trainMs = performance.now() - t;

const view: RecommenderView = {
  recommender: () => rec,
  progress: () => progress,
  touched: (u) => touched.get(u),
  categoryOf: (i) => categories.get(i),
};
const bs = defaultBlend(ECOMMERCE);
const row = () => undefined;

// Known users in a seeded random order, with a share of never-seen ones mixed in.
const rand = rng32(7);
const known = [...touched.keys()];
for (let x = known.length - 1; x > 0; x--) {
  const y = rand() % (x + 1);
  [known[x], known[y]] = [known[y]!, known[x]!];
}
const users: string[] = [];
for (let x = 0; x < calls; x++)
  users.push(rand() / 4294967296 < unknownShare ? `unknown${x}` : known[x % known.length]!);

const time = (label: string, list: string[]) => {
  const t0 = performance.now();
  const c0 = process.cpuUsage();
  let items = 0;
  for (const u of list) items += blendAnswer(view, bs, row, u, 10, undefined).items.length;
  const us = ((performance.now() - t0) * 1000) / list.length;
  const c = process.cpuUsage(c0);
  const cpu = (c.user + c.system) / list.length;
  console.log(
    `${label}: ${cpu.toFixed(1)} µs CPU, ${us.toFixed(1)} µs wall per answer (${list.length} calls, ${items} items)`,
  );
  return us;
};
console.log(
  `${events} events fed in ${feedMs.toFixed(0)} ms (${((feedMs * 1000) / events).toFixed(1)} µs/event); ` +
    `${known.length} users, ${categories.size} items; ALS trained in ${trainMs.toFixed(0)} ms`,
);
const ingestOnly = process.env.SERVE_MICRO_ONLY === "ingest";
time("warm-up, distinct users", users.slice(0, 2000));
if (!ingestOnly) {
  time("distinct users (first pass)", users);
  time("same users again", users);
  time(
    "one user (u0) only",
    Array.from({ length: 5000 }, () => "u0"),
  );
}

// Step 4b's case: the sources change before every answer; feeding is timed apart.
{
  let fedUs = 0;
  let cpuFed = 0;
  let bytes = 0;
  const digest = createHash("sha256");
  const t0 = performance.now();
  const c0 = process.cpuUsage();
  for (const u of users) {
    const f0 = performance.now();
    const fc = process.cpuUsage();
    for (let x = 0; x < fedPerAnswer; x++) feedOne();
    const fd = process.cpuUsage(fc);
    cpuFed += fd.user + fd.system;
    fedUs += (performance.now() - f0) * 1000;
    const answer = blendAnswer(view, bs, row, u, 10, undefined);
    const out = encodeRecommendationsResponse(toRecommendationsResponse(answer));
    bytes += out.length;
    digest.update(out);
  }
  const c = process.cpuUsage(c0);
  const wall = (performance.now() - t0) * 1000 - fedUs;
  const cpu = c.user + c.system - cpuFed;
  console.log(
    `under ingest (${fedPerAnswer} events fed before each answer), answer + response bytes: ` +
      `${(cpu / users.length).toFixed(1)} µs CPU, ${(wall / users.length).toFixed(1)} µs wall per answer ` +
      `(${users.length} calls, ${(bytes / users.length).toFixed(0)} bytes each, digest ` +
      `${digest.digest("hex").slice(0, 16)})`,
  );
}
