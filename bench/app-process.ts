import { spawn, type ChildProcess, type StdioOptions } from "node:child_process";
import { createWriteStream } from "node:fs";
import { readFile } from "node:fs/promises";
import { runtimeEnv } from "../bin/node-runtime.mjs";
import { repoPath, spawnTs } from "./child.js";
import { procCpuSeconds, procRssBytes, scrape, type PromSample } from "./util.js";

/** One pino log line of the app (JSON), with the time this process read it. */
export interface LogLine {
  /** pino's `time`: epoch ms when the app wrote it. */
  time: number;
  msg?: string;
  level?: number;
  [k: string]: unknown;
}

export interface AppProcessOptions {
  natsUrl: string;
  dataDir: string;
  grpcPort: number;
  metricsPort: number;
  partitions: number;
  /** More settings (TRENDING_TRIGGER, …). */
  env?: Record<string, string>;
  /** A split role (`reco worker`, `reco gateway`) instead of `start`, through bin/reco.mjs. */
  role?: "worker" | "gateway";
  /** Pins the process (and the children it starts) to these CPUs: `taskset -c <cpus>`. */
  cpus?: string;
}

/**
 * The app as `npm start` runs it (node on the compiled `dist/bin/main.js`; with
 * `BENCH_APP_TSX=1`, `bin/main.ts` through tsx as before), in a child process of its own.
 */
export interface AppProcess {
  readonly pid: number;
  /** Epoch ms (sub-millisecond) just before spawn(). */
  readonly spawnedAt: number;
  readonly grpcAddress: string;
  readonly metricsPort: number;
  /** Log lines so far. */
  readonly logs: readonly LogLine[];
  /** Resolves with the first log line (past or future) that `match` accepts. */
  waitForLog(match: (l: LogLine) => boolean, timeoutMs?: number): Promise<LogLine>;
  /** Resolves with the "reco-stream ready" line. */
  ready(timeoutMs?: number): Promise<LogLine>;
  metrics(): Promise<PromSample[]>;
  /** Resident set size from /proc (bytes), with the app's child processes (the parse process). */
  rss(): Promise<number>;
  /** CPU seconds so far, with the app's child processes that are still running. */
  cpuSeconds(): Promise<number>;
  /** SIGKILL; resolves when the process is gone, with the epoch ms of the kill. */
  kill(): Promise<number>;
  /** SIGTERM (the app drains), SIGKILL after `graceMs`; resolves when the process is gone. */
  stop(graceMs?: number): Promise<void>;
  /** Resolves when the process exits. */
  readonly exited: Promise<{ code: number | null; signal: string | null }>;
}

/** Epoch ms with sub-millisecond resolution (comparable across processes on one machine). */
export const epochNow = () => performance.timeOrigin + performance.now();

/** `BENCH_APP_TSX=1`: the app process runs the TypeScript sources through tsx (the old start). */
export const APP_FROM_SOURCES = process.env.BENCH_APP_TSX === "1";

/**
 * `BENCH_HEAP_SNAPSHOT_DIR`: the app process writes a V8 heap snapshot there when step 7 has
 * measured each point (SIGUSR2), to find what holds memory per user.
 */
export const HEAP_SNAPSHOT_DIR = process.env.BENCH_HEAP_SNAPSHOT_DIR;
/**
 * `BENCH_APP_NODE_FLAGS`: more node flags for the app process, e.g. `--cpu-prof
 * --cpu-prof-dir=/tmp/prof` to profile a restart (node refuses --cpu-prof in NODE_OPTIONS).
 */
const APP_NODE_FLAGS = [
  ...(HEAP_SNAPSHOT_DIR
    ? ["--heapsnapshot-signal=SIGUSR2", `--diagnostic-dir=${HEAP_SNAPSHOT_DIR}`]
    : []),
  ...(process.env.BENCH_APP_NODE_FLAGS ?? "").split(" ").filter(Boolean),
];

export function spawnApp(o: AppProcessOptions): AppProcess {
  // The node flags and environment `npm start` and the image start the app with (its launcher
  // relaunches node with them: bin/node-runtime.mjs), given here at the spawn.
  const env: NodeJS.ProcessEnv = runtimeEnv({
    ...process.env,
    NATS_URL: o.natsUrl,
    DATA_DIR: o.dataDir,
    GRPC_PORT: String(o.grpcPort),
    GRPC_HOST: "127.0.0.1",
    METRICS_PORT: String(o.metricsPort),
    // debug: main.ts logs the configuration right after its modules are loaded, which is how the
    // bench tells process start (node, imports; tsx compiling with BENCH_APP_TSX=1) from the
    // app's own start.
    LOG_LEVEL: "debug",
    PARTITIONS: String(o.partitions),
    ...o.env,
  });
  const spawnedAt = epochNow();
  const stdio: StdioOptions = ["ignore", "pipe", "pipe"];
  // run.ts built dist/ before the first step (bin/build.mjs).
  // A role starts through bin/reco.mjs, which runs dist/ (or the sources through tsx when one is
  // newer); taskset execs node, so the pid is the app's.
  const nodeArgs = o.role
    ? [...APP_NODE_FLAGS, repoPath("../bin/reco.mjs"), o.role]
    : [...APP_NODE_FLAGS, repoPath("../dist/bin/main.js")];
  const child: ChildProcess =
    APP_FROM_SOURCES && !o.role && !o.cpus
      ? spawnTs(repoPath("../bin/main.ts"), [], { env, stdio })
      : o.cpus
        ? spawn("taskset", ["-c", o.cpus, process.execPath, ...nodeArgs], { env, stdio })
        : spawn(process.execPath, nodeArgs, { env, stdio });
  const logs: LogLine[] = [];
  // BENCH_APP_LOG=file: this app's info, warnings and errors are appended there (pino's JSON,
  // with its pid), so a failed step can say why.
  const logFile = process.env.BENCH_APP_LOG
    ? createWriteStream(process.env.BENCH_APP_LOG, { flags: "a" })
    : undefined;
  const waiters: { match: (l: LogLine) => boolean; resolve: (l: LogLine) => void }[] = [];
  let stderr = "";
  let buf = "";
  child.stdout!.setEncoding("utf8").on("data", (chunk: string) => {
    buf += chunk;
    let nl: number;
    while ((nl = buf.indexOf("\n")) >= 0) {
      const line = buf.slice(0, nl);
      buf = buf.slice(nl + 1);
      let l: LogLine;
      try {
        l = JSON.parse(line) as LogLine;
      } catch {
        stderr = (stderr + line + "\n").slice(-4000);
        continue;
      }
      logs.push(l);
      if (logFile && Number(l.level) >= 30) logFile.write(line + "\n");
      for (const w of [...waiters])
        if (w.match(l)) {
          waiters.splice(waiters.indexOf(w), 1);
          w.resolve(l);
        }
    }
  });
  child.stderr!.setEncoding("utf8").on("data", (c: string) => (stderr = (stderr + c).slice(-4000)));
  const exited = new Promise<{ code: number | null; signal: string | null }>((resolve) =>
    child.once("exit", (code, signal) => resolve({ code, signal })),
  );
  let gone = false;
  void exited.then(() => (gone = true));
  // If the bench dies, the app must not outlive it.
  const killOnExit = () => child.kill("SIGKILL");
  process.once("exit", killOnExit);
  void exited.then(() => process.off("exit", killOnExit));

  const waitForLog = (match: (l: LogLine) => boolean, timeoutMs = 120_000) => {
    const seen = logs.find(match);
    if (seen) return Promise.resolve(seen);
    return new Promise<LogLine>((resolve, reject) => {
      const w = {
        match,
        resolve: (l: LogLine) => {
          clearTimeout(t);
          resolve(l);
        },
      };
      const t = setTimeout(() => {
        waiters.splice(waiters.indexOf(w), 1);
        reject(new Error(`app: no such log line within ${timeoutMs} ms\n${stderr}`));
      }, timeoutMs);
      waiters.push(w);
      void exited.then(({ code, signal }) => {
        if (!waiters.includes(w)) return;
        waiters.splice(waiters.indexOf(w), 1);
        clearTimeout(t);
        reject(new Error(`app exited with ${signal ?? code}\n${stderr}`));
      });
    });
  };

  const pid = child.pid ?? -1;
  return {
    pid,
    spawnedAt,
    grpcAddress: `127.0.0.1:${o.grpcPort}`,
    metricsPort: o.metricsPort,
    logs,
    waitForLog,
    ready: (timeoutMs) =>
      waitForLog(
        (l) => typeof l.msg === "string" && l.msg.startsWith("reco-stream ready"),
        timeoutMs,
      ),
    metrics: () => scrape(o.metricsPort),
    async rss() {
      let total = 0;
      for (const p of await processTree(pid)) total += await procRssBytes(p);
      return total;
    },
    async cpuSeconds() {
      let total = 0;
      for (const p of await processTree(pid)) total += await procCpuSeconds(p);
      return total;
    },
    async kill() {
      const at = epochNow();
      if (!gone) child.kill("SIGKILL");
      await exited;
      return at;
    },
    async stop(graceMs = 20_000) {
      if (gone) return;
      child.kill("SIGTERM");
      const t = setTimeout(() => child.kill("SIGKILL"), graceMs);
      await exited;
      clearTimeout(t);
    },
    exited,
  };
}

/**
 * The app's process and its children: with PARSE_PROCESS=1 the parse process (bin/parse-child.ts)
 * is one. A private nats-server would be one too, but the bench always sets NATS_URL.
 */
/** The process and its children (the app and its parse child). */
export async function processTree(pid: number): Promise<number[]> {
  const children = await readFile(`/proc/${pid}/task/${pid}/children`, "utf8").catch(() => "");
  return [pid, ...children.split(/\s+/).filter(Boolean).map(Number)];
}

const label = (m: PromSample) => `${m.labels.stage}/${m.labels.partition}`;

/** Every stage instance's last processed input sequence, by "<stage>/<partition>". */
export async function positions(app: AppProcess): Promise<Map<string, number>> {
  const out = new Map<string, number>();
  for (const m of await app.metrics())
    if (m.name === "reco_stage_position") out.set(label(m), m.value);
  return out;
}

/**
 * Waits until parse has processed the EVENTS stream up to `lastSeq`, no stage instance's input
 * position has moved for `settleMs`, and every consumer-lag gauge reads 0 (metrics polled every
 * `pollMs`). `doneAt` is the epoch ms of the last observed move.
 */
export async function waitCaughtUp(
  app: AppProcess,
  lastSeq: number,
  o: { timeoutMs: number; settleMs?: number; pollMs?: number },
): Promise<{
  doneAt: number;
  timedOut: boolean;
  parsed: number;
  /** Caught up although these lag gauges ("stage/partition value") stayed above 0. */
  lagGaugeStuck: string;
  /** Timed out: the lag gauges above 0 then, and whether positions still moved. */
  behind?: { lagging: string; moving: boolean };
}> {
  const settleMs = o.settleMs ?? 1000;
  const t0 = epochNow();
  let lastSum = -1;
  let lastMove = t0;
  for (;;) {
    const samples = await app.metrics().catch(() => [] as PromSample[]);
    const now = epochNow();
    let sum = 0;
    let parsed = 0;
    const lagging: string[] = [];
    for (const m of samples) {
      if (m.name === "reco_stage_position") {
        sum += m.value;
        if (m.labels.stage === "parse") parsed = m.value;
      } else if (m.name === "reco_stage_consumer_lag" && m.value !== 0)
        lagging.push(`${label(m)} ${m.value}`);
    }
    if (sum !== lastSum) {
      lastSum = sum;
      lastMove = now;
    } else if (parsed >= lastSeq && now - lastMove >= settleMs && lagging.length === 0)
      return { doneAt: lastMove, timedOut: false, parsed, lagGaugeStuck: "" };
    // A lag gauge is the pending count of the last message its instance took, which could stay
    // above 0 with nothing left to deliver; the engine now asks the server once the input is
    // quiet for 1 s (actors/host/host.ts `lag`). Positions that stay put for 5 × settleMs are
    // caught up too, and the step says which gauges were still up.
    else if (parsed >= lastSeq && now - lastMove >= 5 * settleMs)
      return { doneAt: lastMove, timedOut: false, parsed, lagGaugeStuck: lagging.join(", ") };
    if (now - t0 > o.timeoutMs)
      return {
        doneAt: now,
        timedOut: true,
        parsed,
        lagGaugeStuck: "",
        behind: { lagging: lagging.join(", "), moving: now - lastMove < settleMs },
      };
    await new Promise((r) => setTimeout(r, o.pollMs ?? 100));
  }
}

/**
 * Waits until every stage instance has completed `count` more snapshots than when called, so at
 * least one snapshot that started after the call has been written.
 */
export async function waitSnapshots(app: AppProcess, count = 2, timeoutMs = 60_000): Promise<void> {
  const counts = async () => {
    const out = new Map<string, number>();
    for (const m of await app.metrics())
      if (m.name === "reco_stage_snapshot_seconds_count") out.set(label(m), m.value);
    return out;
  };
  const before = await counts();
  const t0 = Date.now();
  for (;;) {
    const now = await counts();
    if ([...before].every(([k, v]) => (now.get(k) ?? 0) >= v + count)) return;
    if (Date.now() - t0 > timeoutMs)
      throw new Error(`no snapshot of every stage within ${timeoutMs} ms`);
    await new Promise((r) => setTimeout(r, 200));
  }
}
