/**
 * The cold-key index (state/cold-index.ts) alone: bytes per key and CPU of its three uses, for
 * A/B of its table's density or its compaction bound. `npx tsx bench/cold-index-micro.ts [keys]
 * [rewrites]`: (1) a live ingest: `keys` user keys written once each, then `rewrites` more
 * writes of Zipf-chosen keys, in deltas of 2,000 records adopted as snapshots adopt them, with a
 * compaction when wasteful(); (2) lookups of every key; (3) a restart: adoptAll of a checkpoint
 * of the live keys in chunks of 10,000 records. Values are 30 random bytes (a profile's size).
 */
import { createColdIndex } from "../state/cold-index.js";
import { encodeSections } from "../state/sections.js";

const KEYS = Number(process.argv[2] ?? 125_000);
const REWRITES = Number(process.argv[3] ?? 0);
const DELTA = 2_000;
const FACTOR = Number(process.env.WASTE_FACTOR ?? 2);
const cpu = () => {
  const u = process.cpuUsage();
  return (u.user + u.system) / 1000;
};
let seed = 1;
const rand = () => (seed = (Math.imul(seed, 1103515245) + 12345) >>> 0) / 2 ** 32;
const value = new Uint8Array(30).map((_, i) => i * 7);
const key = (n: number) => `u${100_000 + n}`;

const idx = createColdIndex();
let pending: string[] = [];
let compactions = 0;
/** Bytes held after each delta (once every key is in): mean and peak over the rewrites. */
let sampled = 0;
let sumBytes = 0;
let peakBytes = 0;
const flush = () => {
  if (pending.length === 0) return;
  const { buf, at } = encodeSections([
    { name: "m", keys: pending, values: pending.map(() => value) },
  ]);
  idx.adopt(buf, at[0]!.start, at[0]!.end);
  if (idx.wasteful(FACTOR)) {
    idx.compact(10_000, 0);
    compactions++;
  }
  if (idx.count === KEYS) {
    sampled++;
    sumBytes += idx.bytes();
    peakBytes = Math.max(peakBytes, idx.bytes());
  }
  pending = [];
};
const put = (k: string) => {
  pending.push(k);
  if (pending.length === DELTA) flush();
};
let t = cpu();
for (let n = 0; n < KEYS; n++) put(key(n));
// Zipf-ish: a few heavy users rewritten often.
for (let n = 0; n < REWRITES; n++) put(key(Math.floor(KEYS * rand() ** 3)));
flush();
const ingestMs = cpu() - t;
const ingestedBytes = idx.bytes();
const liveBytes = idx.count * (7 + key(0).length + 1 + value.length);
t = cpu();
let found = 0;
for (let n = 0; n < KEYS; n++) if (idx.get(key(n))) found++;
const getMs = cpu() - t;
const chunks = idx
  .compact(10_000, 0)
  .map(({ buf, count }) => ({ buf, start: 0, end: buf.length, count }));
const bytesAfter = idx.bytes();
const again = createColdIndex();
t = cpu();
const steps = again.adoptAll(chunks);
while (!steps.next().done);
again.fit();
const loadMs = cpu() - t;
console.log(
  JSON.stringify({
    factor: FACTOR,
    keys: KEYS,
    rewrites: REWRITES,
    found,
    bytesPerKeyIngested: +(ingestedBytes / KEYS).toFixed(1),
    compactions,
    meanBytesPerKey: +(sumBytes / Math.max(1, sampled) / KEYS).toFixed(1),
    peakBytesPerKey: +(peakBytes / KEYS).toFixed(1),
    ingestNsPerWrite: Math.round((ingestMs * 1e6) / (KEYS + REWRITES)),
    getNsPerKey: Math.round((getMs * 1e6) / KEYS),
    restartNsPerKey: Math.round((loadMs * 1e6) / KEYS),
    bytesPerKeyRestarted: +(again.bytes() / KEYS).toFixed(1),
    liveRecordBytesPerKey: +(liveBytes / KEYS).toFixed(1),
    bytesAfterCompact: +(bytesAfter / KEYS).toFixed(1),
  }),
);
