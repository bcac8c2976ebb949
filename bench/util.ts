import { createWriteStream } from "node:fs";
import { mkdtemp, readdir, readFile, rm, stat } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { startEmbeddedNats, type EmbeddedNats } from "../connectors/nats/embedded-server.js";
import { Source } from "../proto/gen/reco/v1/reco_pb.js";

export const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

/** Runs `fn` against a fresh nats-server with a temp store; both are removed afterwards. */
export async function withFreshNats<T>(
  label: string,
  fn: (nats: EmbeddedNats, dir: string) => Promise<T>,
): Promise<T> {
  const dir = await mkdtemp(join(tmpdir(), `reco-bench-${label}-`));
  let nats: EmbeddedNats | undefined;
  try {
    // BENCH_NATS_LOG=prefix: the server's log goes to <prefix>-<label>.log, kept after the run
    // (it says why it closed a client: slow consumer, stale connection).
    const logTo = process.env.BENCH_NATS_LOG;
    const file = logTo ? createWriteStream(`${logTo}-${label}.log`, { flags: "a" }) : undefined;
    nats = await startEmbeddedNats({
      port: 0,
      storeDir: join(dir, "nats"),
      ...(file ? { onLog: (chunk: string) => file.write(chunk) } : {}),
    });
    return await fn(nats, dir);
  } finally {
    await nats?.stop();
    await rm(dir, { recursive: true, force: true });
  }
}

/** Total size in bytes of the regular files under `dir` (0 if it does not exist). */
export async function dirSize(dir: string): Promise<number> {
  let total = 0;
  let entries;
  try {
    entries = await readdir(dir, { withFileTypes: true });
  } catch {
    return 0;
  }
  for (const e of entries) {
    const p = join(dir, e.name);
    if (e.isDirectory()) total += await dirSize(p);
    // LevelDB compaction may delete a file between readdir and stat.
    else if (e.isFile())
      total += await stat(p).then(
        (st) => st.size,
        () => 0,
      );
  }
  return total;
}

/** Bytes of the app's LevelDB stores: `state`, and `state-parse` with PARSE_PROCESS=1. */
export async function stateDirBytes(dataDir: string): Promise<number> {
  return (await dirSize(join(dataDir, "state"))) + (await dirSize(join(dataDir, "state-parse")));
}

/** Resident set size of a process from /proc, in bytes (NaN once it is gone). */
export async function procRssBytes(pid: number): Promise<number> {
  const status = await readFile(`/proc/${pid}/status`, "utf8").catch(() => "");
  const kb = /VmRSS:\s+(\d+) kB/.exec(status)?.[1];
  return kb === undefined ? NaN : Number(kb) * 1024;
}

/** CPU seconds (user + system) a process has used so far, from /proc (Linux only). */
export async function procCpuSeconds(pid: number | string): Promise<number> {
  try {
    const s = await readFile(`/proc/${pid}/stat`, "utf8");
    // Fields after the command name (which may contain spaces) start after the last ')'.
    const f = s.slice(s.lastIndexOf(")") + 2).split(" ");
    // utime and stime are fields 14 and 15 of the full line, i.e. 11 and 12 here; 100 ticks/s.
    return (Number(f[11]) + Number(f[12])) / 100;
  } catch {
    return NaN;
  }
}

/**
 * CPU seconds of one thread of a process so far (/proc/<pid>/task/<tid>/stat; Linux only, 10 ms
 * ticks; NaN when unreadable). The main thread is tid = pid: the rest of a process's CPU is its
 * other threads (V8's GC helpers, the libuv pool, LevelDB's compaction, worker threads).
 */
export async function threadCpuSeconds(pid: number, tid = pid): Promise<number> {
  return procCpuSeconds(`${pid}/task/${tid}`);
}

/**
 * CPU seconds on a CPU so far (schedstat) of each live thread of a process other than the main
 * one, in the order they were created ("<n> <name>": Node 20 names them all "node"; V8's four
 * platform threads, GC and compile helpers, come first, then the libuv pool as it starts, worker
 * threads, LevelDB's compaction thread), and of its child processes ("child <pid>"). Threads that
 * ended are not listed: procCpuSeconds less the main thread and these is theirs. Linux only;
 * empty when unreadable.
 */
export async function threadCpuList(pid: number): Promise<Record<string, number>> {
  const out: Record<string, number> = {};
  const tids = (await readdir(`/proc/${pid}/task`).catch(() => [] as string[]))
    .map(Number)
    .filter((t) => t !== pid)
    .sort((a, b) => a - b);
  for (const [n, tid] of tids.entries()) {
    const comm = (await readFile(`/proc/${pid}/task/${tid}/comm`, "utf8").catch(() => "?")).trim();
    const { run } = await threadSchedSeconds(pid, tid);
    if (Number.isFinite(run)) out[`${n + 1} ${comm}`] = run;
  }
  const children = await readFile(`/proc/${pid}/task/${pid}/children`, "utf8").catch(() => "");
  for (const c of children.trim().split(" ").filter(Boolean))
    out[`child ${c}`] = await procCpuSeconds(c);
  return out;
}

/**
 * Seconds one thread has spent on a CPU and runnable waiting for one so far
 * (/proc/<pid>/task/<tid>/schedstat, nanoseconds; Linux only, NaN when unreadable). Waiting is
 * what other work on the machine cost the thread: a figure measured while it was high says more
 * about the machine than about the code.
 */
export async function threadSchedSeconds(
  pid: number,
  tid = pid,
): Promise<{ run: number; wait: number }> {
  try {
    const [run = NaN, wait = NaN] = (await readFile(`/proc/${pid}/task/${tid}/schedstat`, "utf8"))
      .split(" ")
      .map((x) => Number(x) / 1e9);
    return { run, wait };
  } catch {
    return { run: NaN, wait: NaN };
  }
}

/**
 * Jiffies the whole machine has spent busy and in total so far (all cores, /proc/stat; Linux
 * only): two readings give the share of the machine in use, whatever process used it.
 */
export async function machineCpuTicks(): Promise<{ busy: number; total: number }> {
  try {
    const line = (await readFile("/proc/stat", "utf8")).split("\n")[0]!;
    const f = line.trim().split(/\s+/).slice(1).map(Number);
    const total = f.reduce((a, b) => a + b, 0);
    // idle and iowait are the 4th and 5th fields.
    return { busy: total - (f[3] ?? 0) - (f[4] ?? 0), total };
  } catch {
    return { busy: NaN, total: NaN };
  }
}

/** The share (%) of the machine busy between two machineCpuTicks() readings. */
export const machineBusyPct = (
  a: { busy: number; total: number },
  b: { busy: number; total: number },
) => ((b.busy - a.busy) / (b.total - a.total)) * 100;

/** CPU seconds this process has used so far. */
export function selfCpuSeconds(): number {
  const u = process.cpuUsage();
  return (u.user + u.system) / 1e6;
}

/** Nearest-rank percentile of an ascending array. */
export function percentile(sorted: ArrayLike<number>, p: number): number {
  if (sorted.length === 0) return NaN;
  const rank = Math.ceil((p / 100) * sorted.length);
  return sorted[Math.min(sorted.length - 1, Math.max(0, rank - 1))]!;
}

export function median(values: number[]): number {
  const s = [...values].sort((a, b) => a - b);
  if (s.length === 0) return NaN;
  const m = s.length >> 1;
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
}

/** Samples of Prometheus text exposition: `name{labels} value`. */
export interface PromSample {
  name: string;
  labels: Record<string, string>;
  value: number;
}

export function parseProm(text: string): PromSample[] {
  const out: PromSample[] = [];
  for (const line of text.split("\n")) {
    if (line === "" || line.startsWith("#")) continue;
    const m = /^([a-zA-Z_:][\w:]*)(?:\{(.*)\})?\s+(\S+)/.exec(line);
    if (!m) continue;
    const labels: Record<string, string> = {};
    for (const l of (m[2] ?? "").matchAll(/(\w+)="((?:[^"\\]|\\.)*)"/g)) labels[l[1]!] = l[2]!;
    out.push({ name: m[1]!, labels, value: Number(m[3]) });
  }
  return out;
}

/**
 * The app's /metrics. Tried three times, 1 s apart: on a loaded machine a scrape of a busy app
 * failed now and then ("fetch failed"), and one failed scrape failed a whole step.
 */
export async function scrape(metricsPort: number): Promise<PromSample[]> {
  for (let attempt = 1; ; attempt++) {
    try {
      const res = await fetch(`http://127.0.0.1:${metricsPort}/metrics`);
      return parseProm(await res.text());
    } catch (err) {
      if (attempt >= 3) {
        const cause = (err as { cause?: unknown }).cause;
        throw new Error(`scrape of :${metricsPort}/metrics failed: ${String(cause ?? err)}`);
      }
      await new Promise((resolve) => setTimeout(resolve, 1000));
    }
  }
}

export const sum = (samples: PromSample[], name: string, where: Record<string, string> = {}) =>
  samples
    .filter((s) => s.name === name && Object.entries(where).every(([k, v]) => s.labels[k] === v))
    .reduce((a, s) => a + s.value, 0);

export const fmtInt = (n: number) =>
  Number.isFinite(n) ? Math.round(n).toLocaleString("en-US") : "n/a";
export const fmtMs = (n: number) =>
  Number.isFinite(n) ? (n < 10 ? n.toFixed(2) : n.toFixed(1)) : "n/a";
export const fmtMiB = (bytes: number) => `${(bytes / 1048576).toFixed(1)} MiB`;

/**
 * Whether an answer shows `item` as the user's own: PERSONALIZED (the design ranking's interest
 * join) or HISTORY (the blend, the default, lists a user's recent items under that source and
 * has no PERSONALIZED items). Probes of freshness and recovery look for this.
 */
export function showsAsOwn(
  items: readonly { itemId: string; source: Source }[],
  item: string,
): boolean {
  return items.some(
    (i) => i.itemId === item && (i.source === Source.PERSONALIZED || i.source === Source.HISTORY),
  );
}
