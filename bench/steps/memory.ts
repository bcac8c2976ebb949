/**
 * Step 7, memory: the app as `npm start` runs it (its own process), fed events of a known number
 * of active users (every user exactly the same number of events), at several scales, and once
 * with the same users and twice the events. RSS of the app's process against its idle start,
 * LevelDB state directory after snapshots, and the state keys each stage holds.
 */
import { readdir, stat } from "node:fs/promises";
import { join } from "node:path";
import { readFile } from "node:fs/promises";
import { HEAP_SNAPSHOT_DIR, processTree } from "../app-process.js";
import { withIngestedApp, type IngestedApp } from "../ingested-app.js";
import { ratio, TARGETS, verdict, type Report } from "../report.js";
import {
  fmtInt,
  fmtMiB,
  procRssBytes,
  sleep,
  stateDirBytes,
  sum,
  type PromSample,
} from "../util.js";

export interface MemoryOptions {
  /** Active users of each point. */
  users: number[];
  /** Also run this many users with two events each (the "2× events" point); 0: skip. */
  doubleAt: number;
  partitions: number;
  ingestTimeoutMs: number;
  publishWindow: number;
}

interface Point {
  users: number;
  events: number;
  rssIdle: number;
  rss: number;
  heapUsed: number;
  levelIdle: number;
  level: number;
  keys: Map<string, number>;
  ingestSecs: number;
  lagGaugeStuck: string;
  /** Where the RSS is: each process's, and the app's V8 heap and memory outside it. */
  parts: string;
  /** The same app after BENCH_MEMORY_SETTLE_S without input: RSS and V8 heap held and used. */
  settled?: { secs: number; rss: number; heapHeld: number; heapUsed: number };
}

/** A process's anonymous and file-backed resident memory (/proc/<pid>/status). */
async function rssParts(pid: number): Promise<{ anon: number; file: number }> {
  const status = await readFile(`/proc/${pid}/status`, "utf8").catch(() => "");
  const kb = (name: string) =>
    Number(new RegExp(`${name}:\\s+(\\d+) kB`).exec(status)?.[1] ?? NaN) * 1024;
  return { anon: kb("RssAnon"), file: kb("RssFile") + kb("RssShmem") };
}

/**
 * The process's anonymous resident memory by kind of mapping (/proc/<pid>/smaps): malloc's main
 * heap (`[heap]`, brk), glibc's thread arenas (64 MiB-aligned anonymous mappings of up to 64 MiB:
 * also where a worker thread's malloc goes), and the other anonymous mappings (V8's heap pages,
 * large mmap'ed allocations such as array buffers over the mmap threshold, thread stacks).
 */
async function anonByMapping(pid: number): Promise<string> {
  const smaps = await readFile(`/proc/${pid}/smaps`, "utf8").catch(() => "");
  if (!smaps) return "";
  let heap = 0;
  let arenas = 0;
  let arenaCount = 0;
  let other = 0;
  let kind: "heap" | "arena" | "other" | "file" = "file";
  for (const line of smaps.split("\n")) {
    const head = /^([0-9a-f]+)-([0-9a-f]+) \S+ \S+ \S+ (\d+)\s*(.*)$/.exec(line);
    if (head) {
      const start = parseInt(head[1]!, 16);
      const size = parseInt(head[2]!, 16) - start;
      const path = (head[4] ?? "").trim();
      const arena = start % 2 ** 26 === 0 && size <= 2 ** 26;
      kind = path === "[heap]" ? "heap" : path === "" ? (arena ? "arena" : "other") : "file";
      if (kind === "arena") arenaCount++;
      continue;
    }
    const rss = /^Rss:\s+(\d+) kB/.exec(line);
    if (!rss) continue;
    const b = Number(rss[1]) * 1024;
    if (kind === "heap") heap += b;
    else if (kind === "arena") arenas += b;
    else if (kind === "other") other += b;
  }
  return (
    `; anonymous by mapping: malloc's main heap ${fmtMiB(heap)}, ${arenaCount} thread arenas ` +
    `${fmtMiB(arenas)}, other ${fmtMiB(other)}`
  );
}

/**
 * The V8 heap used by space (new, old, large objects, code…), largest first, each with what the
 * space holds (committed: what the RSS counts) after a slash: where the heap held above the heap
 * used is.
 */
function spaces(samples: PromSample[]): string {
  const held = new Map<string, number>();
  for (const m of samples)
    if (m.name === "nodejs_heap_space_size_total_bytes") held.set(m.labels.space ?? "?", m.value);
  return samples
    .filter((m) => m.name === "nodejs_heap_space_size_used_bytes")
    .filter((m) => Math.max(m.value, held.get(m.labels.space ?? "?") ?? 0) >= 1 << 20)
    .sort((a, b) => b.value - a.value)
    .map((m) => {
      const space = m.labels.space ?? "?";
      const h = held.get(space);
      return `${space.replace(/_space$/, "")} ${fmtMiB(m.value)}${h === undefined ? "" : ` / ${fmtMiB(h)}`}`;
    })
    .join(", ");
}

/** Cold-key bytes (stored records and indexes: external memory) by stage, largest first. */
function coldByStage(samples: PromSample[]): string {
  const by = new Map<string, number>();
  for (const m of samples)
    if (m.name === "reco_stage_state_cold_bytes") {
      const stage = m.labels.stage ?? "?";
      by.set(stage, (by.get(stage) ?? 0) + m.value);
    }
  const total = [...by.values()].reduce((a, b) => a + b, 0);
  const parts = [...by]
    .filter(([, v]) => v >= 1 << 20)
    .sort((a, b) => b[1] - a[1])
    .map(([stage, v]) => `${stage} ${fmtMiB(v)}`);
  return `${fmtMiB(total)}${parts.length ? ` (${parts.join(", ")})` : ""}`;
}

/** The parse process's heap held and used and its memory outside the heap (its own gauge). */
function parseMemory(samples: PromSample[]): string {
  const kind = (k: string) => sum(samples, "reco_parse_memory_bytes", { kind: k });
  if (!samples.some((m) => m.name === "reco_parse_memory_bytes")) return "";
  return (
    ` (parse: V8 heap ${fmtMiB(kind("heap_held"))} held, ${fmtMiB(kind("heap_used"))} used; ` +
    `external ${fmtMiB(kind("external"))}, of which array buffers ${fmtMiB(kind("array_buffers"))})`
  );
}

/** "2× events at the same users" grows memory by at most this factor to count as not growing. */
const SAME_MEMORY = 1.25;
/** DESIGN §8: at most 1 KB of RSS per active user at 1M users. */
const TARGET_USERS = 1_000_000;
const TARGET_BYTES_PER_USER = TARGETS.bytesPerUserAt1M;

/** Asks the app for a heap snapshot (SIGUSR2) and waits until its file stops growing. */
async function heapSnapshot(pid: number, dir: string): Promise<void> {
  const files = async () =>
    (await readdir(dir)).filter((f) => f.endsWith(".heapsnapshot") && f.includes(String(pid)));
  const before = new Set(await files());
  process.kill(pid, "SIGUSR2");
  let last = -1;
  for (let t = 0; t < 600; t++) {
    await sleep(1000);
    const f = (await files()).find((x) => !before.has(x));
    if (f === undefined) continue;
    const size = (await stat(join(dir, f))).size;
    if (size === last && size > 0) return;
    last = size;
  }
}

/** RSS, heap, LevelDB and state keys of an app that has ingested its events. */
async function measure(s: IngestedApp): Promise<Point> {
  const samples = await s.app.metrics();
  const keys = new Map<string, number>();
  for (const m of samples)
    if (m.name === "reco_stage_state_keys") {
      const stage = m.labels.stage ?? "?";
      keys.set(stage, (keys.get(stage) ?? 0) + m.value);
    }
  const rss = await s.app.rss();
  const [main, ...children] = await processTree(s.app.pid);
  const m = await rssParts(main!);
  const byMapping = await anonByMapping(main!);
  const childRss = await Promise.all(children.map((c) => procRssBytes(c)));
  const cpu = await s.app.cpuSeconds();
  const parts =
    `CPU ${cpu.toFixed(1)} s (with the parse process) since start, GC pauses ` +
    ["major", "minor", "incremental"]
      .map(
        (kind) =>
          `${kind} ${sum(samples, "nodejs_gc_duration_seconds_sum", { kind }).toFixed(1)} s`,
      )
      .join(", ") +
    `; ` +
    `app ${fmtMiB(m.anon)} anonymous + ${fmtMiB(m.file)} file-backed (V8 heap ` +
    `${fmtMiB(sum(samples, "nodejs_heap_size_total_bytes"))} held, ` +
    `${fmtMiB(sum(samples, "nodejs_heap_size_used_bytes"))} used; external ` +
    `${fmtMiB(sum(samples, "nodejs_external_memory_bytes"))}, of which cold state ` +
    `${coldByStage(samples)}; used by space: ` +
    spaces(samples) +
    " (used / held)" +
    `; ALS model point ${sum(samples, "reco_recommender", { name: "model_point" })}, training ` +
    `${sum(samples, "reco_recommender", { name: "training" })}${byMapping}), child processes ` +
    `${childRss.map((b) => fmtMiB(b)).join(", ") || "none"}` +
    parseMemory(samples);
  // BENCH_MEMORY_SETTLE_S: the same figures again after that many seconds with no input, to
  // tell garbage from state (the app's one GC once quiet, HEAP_QUIET_GC_MS, comes in between).
  const settleS = Number(process.env.BENCH_MEMORY_SETTLE_S ?? 15);
  let settled = "";
  let after: Point["settled"];
  if (settleS > 0) {
    await sleep(settleS * 1000);
    const later = await s.app.metrics();
    after = {
      secs: settleS,
      rss: await s.app.rss(),
      heapHeld: sum(later, "nodejs_heap_size_total_bytes"),
      heapUsed: sum(later, "nodejs_heap_size_used_bytes"),
    };
    settled =
      `; after ${settleS} s idle: RSS Δ ${fmtMiB(after.rss - s.rssIdle)}, V8 heap ` +
      `${fmtMiB(after.heapHeld)} held, ${fmtMiB(after.heapUsed)} used, external ` +
      `${fmtMiB(sum(later, "nodejs_external_memory_bytes"))}`;
  }
  if (HEAP_SNAPSHOT_DIR) await heapSnapshot(s.app.pid, HEAP_SNAPSHOT_DIR);
  return {
    users: s.users,
    events: s.events,
    rssIdle: s.rssIdle,
    rss,
    heapUsed: sum(samples, "nodejs_heap_size_used_bytes"),
    levelIdle: s.levelIdle,
    level: await stateDirBytes(s.dataDir),
    keys,
    ingestSecs: s.ingestSecs,
    lagGaugeStuck: s.lagGaugeStuck,
    parts: parts + settled,
    ...(after ? { settled: after } : {}),
  };
}

/**
 * Step 7. `then`: also run another measurement on the app of the point with `then.users` users,
 * after this step's (step 6 recovers that state instead of ingesting its own).
 */
export async function stepMemory(
  report: Report,
  o: MemoryOptions,
  then?: { users: number; fn: (s: IngestedApp) => Promise<void> },
): Promise<void> {
  const point = (users: number, perUser: number) =>
    withIngestedApp(
      {
        users,
        perUser,
        partitions: o.partitions,
        ingestTimeoutMs: o.ingestTimeoutMs,
        publishWindow: o.publishWindow,
        log: report.log,
        label: `7. memory, ${fmtInt(users)} users × ${perUser}`,
      },
      async (s) => {
        const p = await measure(s);
        if (perUser === 1 && then?.users === users) await then.fn(s);
        return p;
      },
    );
  const points: Point[] = [];
  let single: Point | undefined;
  let double: Point | undefined;
  for (const users of o.users) {
    const p = await point(users, 1);
    points.push(p);
    if (users === o.doubleAt) single = p;
  }
  if (o.doubleAt > 0) {
    single ??= await point(o.doubleAt, 1);
    double = await point(o.doubleAt, 2);
  }
  const perUser = (bytes: number, users: number) => `${fmtInt(bytes / users)} B/user`;
  const totalKeys = (p: Point) => [...p.keys.values()].reduce((a, b) => a + b, 0);
  for (const p of points) {
    const rssDelta = p.rss - p.rssIdle;
    report.row({
      step: "7",
      figure: `memory at ${fmtInt(p.users)} active users (${fmtInt(p.events)} events): RSS Δ`,
      value: `${fmtMiB(rssDelta)} (${perUser(rssDelta, p.users)})`,
      baseline:
        `LevelDB ${fmtMiB(p.level)} (${perUser(p.level, p.users)}); ${fmtInt(totalKeys(p))} ` +
        `state keys, ${fmtInt(rssDelta / totalKeys(p))} B RSS Δ/key`,
      // DESIGN §8: at most 1 KB of RSS per active user at 1M users, read at rest (the row
      // below) when the bench waits for it: right after the ingest, RSS still holds what the
      // ingest left in the heap, which the app gives back once quiet (HEAP_QUIET_GC_MS).
      target:
        p.users !== TARGET_USERS
          ? "report bytes per active user"
          : p.settled
            ? "report: with what the ingest left in the heap (the target is read at rest, below)"
            : `≤ ${fmtInt(TARGET_BYTES_PER_USER)} B/user at ${fmtInt(TARGET_USERS)} (${verdict(rssDelta / p.users <= TARGET_BYTES_PER_USER)})`,
    });
    if (p.settled) {
      const d = p.settled.rss - p.rssIdle;
      report.row({
        step: "7",
        figure: `the same, ${p.settled.secs} s later without input: RSS Δ`,
        value: `${fmtMiB(d)} (${perUser(d, p.users)})`,
        baseline:
          `V8 heap ${fmtMiB(p.settled.heapHeld)} held, ${fmtMiB(p.settled.heapUsed)} used ` +
          `(right after the ingest: ${fmtMiB(p.heapUsed)} used)`,
        target:
          p.users === TARGET_USERS
            ? `≤ ${fmtInt(TARGET_BYTES_PER_USER)} B/user at ${fmtInt(TARGET_USERS)}, at rest (${verdict(d / p.users <= TARGET_BYTES_PER_USER)})`
            : "garbage the app gave back once quiet (HEAP_QUIET_GC_MS)",
      });
    }
  }
  if (single && double) {
    // At rest where both were read again (the 1 KB target's row): right after the ingest RSS
    // holds what the ingest left in the heap, and twice the events leave more of it.
    const atRest = single.settled !== undefined && double.settled !== undefined;
    const rssOf = (p: Point) => (atRest ? p.settled!.rss : p.rss) - p.rssIdle;
    const rssRatio = rssOf(double) / rssOf(single);
    const levelRatio = double.level / single.level;
    const ok = rssRatio <= SAME_MEMORY && levelRatio <= SAME_MEMORY;
    report.row({
      step: "7",
      figure: `same ${fmtInt(double.users)} users, 2× events (${fmtInt(double.events)}): RSS Δ${atRest ? " at rest" : ""} / LevelDB`,
      value: `${fmtMiB(rssOf(double))} / ${fmtMiB(double.level)}`,
      baseline:
        `${fmtMiB(rssOf(single))} / ${fmtMiB(single.level)} at 1×; state keys ` +
        `×${(totalKeys(double) / totalKeys(single)).toFixed(2)}, parse's dedupe segments ` +
        `×${((double.keys.get("parse") ?? 0) / (single.keys.get("parse") ?? 1)).toFixed(2)}`,
      ratio: `${ratio(rssOf(double), rssOf(single))} / ${ratio(double.level, single.level)}`,
      target: `grows with keys, not events: ≤ ${SAME_MEMORY}× (${verdict(ok)})`,
    });
  }
  const all = [...points, ...(double && !points.includes(double) ? [double] : [])];
  const stages = [...new Set(all.flatMap((p) => [...p.keys.keys()]))].sort();
  report.note(
    `Step 7: for each point a fresh nats-server and a fresh app as \`npm start\` runs it (own ` +
      `process, default settings, ${o.partitions} partitions); events generated with ` +
      `userDist "cycle" (event k goes to user k mod N, so exactly N active users with the same ` +
      `number of events each), spread over 2 h of event time ending now, Zipf items. RSS Δ is the ` +
      `app process's resident set (/proc) after ingesting and two more snapshots of every stage, ` +
      `less its RSS when idle after start (${all.map((p) => fmtMiB(p.rssIdle)).join(", ")}); ` +
      `it includes garbage V8 has not returned and is a high-water mark more than a live-set ` +
      `figure (heap used then: ${all.map((p) => fmtMiB(p.heapUsed)).join(", ")}). LevelDB is the ` +
      `state directory after those snapshots (not compacted). State keys by stage ` +
      `(reco_stage_state_keys), per point: ` +
      all
        .map(
          (p) =>
            `${fmtInt(p.users)}×${p.events / p.users}: ` +
            stages.map((s) => `${s} ${fmtInt(p.keys.get(s) ?? 0)}`).join(", "),
        )
        .join("; ") +
      `. Parse's keys are the segments of its dedupe memory (2,048 event ids each, as 64-bit ` +
      `hashes: 16 B per id, kept for DEDUPE_HORIZON_MS of event time, 26 h, up to ` +
      `DEDUPE_MAX_IDS, 2M): the state that grows with events rather than users; ` +
      `popularity-join holds one profile per user, history one list, interest-ranking its ` +
      `window cells (and, in memory only, a few bytes of aggregates per user)` +
      `. RSS by part, per point: ${all.map((p) => `${fmtInt(p.users)}×${p.events / p.users}: ${p.parts}`).join("; ")}` +
      `. Ingest times (publish start → last position move): ` +
      `${all.map((p) => `${p.ingestSecs.toFixed(1)} s${p.lagGaugeStuck ? ` (lag gauges stayed above 0 with every position still for 5 s: ${p.lagGaugeStuck})` : ""}`).join(", ")}.`,
  );
}
