import { readFileSync, readlinkSync } from "node:fs";
import { createRequire } from "node:module";
import { constants, getPriority, setPriority } from "node:os";
import { pathToFileURL } from "node:url";
import { Worker, isMainThread, parentPort, workerData } from "node:worker_threads";
import type { Ratings } from "./als-matrix-rows.js";
import type { ServedModel } from "./als-served.js";
import type { AlsSettings } from "./als-settings.js";
import { gram } from "./als-solve.js";
import { trainAls } from "./als-train.js";
import { evaluateAls } from "./als-eval.js";
import type { OfflineMetrics } from "./als-served.js";

/**
 * Trains ALS in a worker thread, so the event loop that serves and ingests never waits for it
 * (a training at 1M users takes minutes of CPU). One worker at a time, not a pool: there is one
 * training at a time and its input and output cross as transferred buffers (no copy); a pool
 * library (piscina, workerpool) would add a dependency for nothing here. A worker that finished
 * a small training is kept for the next one for KEEP_MS: its start (node's loaders, this module)
 * was 0.15-0.2 s of CPU, half of each of the 27 trainings of a MovieLens replay of 40,000
 * ratings. One that trained a large matrix is not (its start is a small part of the training,
 * and its heap would hold the matrix's garbage while it waits).
 *
 * The same file is the worker's entry: loaded in a worker with `workerData.als`, it trains and
 * posts the model back.
 */
export interface TrainJob {
  ratings: Ratings;
  settings: AlsSettings;
}

interface WorkerReply {
  /** The item factors of the model trained (its user factors stay in the worker: not served). */
  V?: Float32Array;
  /** Implicit: gram(V) for the fold-ins (computed here for the offline metrics anyway). */
  YtY?: Float64Array;
  offline?: OfflineMetrics;
  iteration?: number;
  error?: string;
  /** The worker thread's CPU seconds until its reply (Linux), with `V` or `error`. */
  cpuSeconds?: number;
  /** The worker thread's id (Linux), its first message: its CPU can be read while it trains. */
  tid?: number;
}

/**
 * ALS trainings of this process: how many finished, and the CPU seconds of their worker threads
 * (module loading, training, offline metrics), those still training included (Linux, else 0).
 * Bench step 2 tells them apart from the CPU per event: its generated events span hours of event
 * time, so it trains once per RETRAIN_INTERVAL of it within a minute, where a live stream trains
 * once an hour.
 */
const done = { trainings: 0, cpuSeconds: 0, workers: 0 };
/**
 * Worker thread ids of the trainings under way, each with its thread's CPU seconds when the
 * training began (0 for a new worker; a kept one has trained before).
 */
const training = new Map<number, number>();
const taskCpu = (tid: number) => threadCpuSeconds(`/proc/self/task/${tid}`) ?? 0;
export function trainingsDone(): { trainings: number; cpuSeconds: number; workers: number } {
  let cpuSeconds = done.cpuSeconds;
  for (const [tid, from] of training) cpuSeconds += taskCpu(tid) - from;
  return { trainings: done.trainings, cpuSeconds, workers: done.workers };
}

/** How long a worker that finished a training is kept for the next one (then terminated). */
const KEEP_MS = 30_000;
/** Trainings of at most this many ratings keep their worker (~12 MB of matrix in its heap). */
const KEEP_MAX_RATINGS = 500_000;
/** The worker kept for the next training, with its thread id. */
let kept:
  | { w: Worker; tid: number | undefined; timer: ReturnType<typeof setTimeout>; gone: () => void }
  | undefined;
/** The kept worker, taken for a training (undefined: none). */
function takeKept(): { w: Worker; tid: number | undefined } | undefined {
  const k = kept;
  if (k === undefined) return undefined;
  kept = undefined;
  clearTimeout(k.timer);
  k.w.off("exit", k.gone);
  k.w.off("error", k.gone);
  k.w.ref();
  return k;
}
/** Keeps `w` (idle, its training's listeners removed) for the next training. */
function keep(w: Worker, tid: number | undefined) {
  takeKept()
    ?.w.terminate()
    .catch(() => undefined);
  const gone = () => {
    if (kept?.w === w) takeKept();
  };
  // Neither keeps the process alive: an idle worker is not work.
  w.unref();
  const timer = setTimeout(() => {
    if (kept?.w === w) void takeKept()!.w.terminate();
  }, KEEP_MS);
  timer.unref();
  w.on("exit", gone);
  w.on("error", gone);
  kept = { w, tid, timer, gone };
}

/** A thread's time on a CPU so far, seconds (Linux: its schedstat), or undefined. */
function threadCpuSeconds(thread = "/proc/thread-self"): number | undefined {
  try {
    const ns = Number(readFileSync(`${thread}/schedstat`, "utf8").split(" ")[0]);
    return Number.isFinite(ns) ? ns / 1e9 : undefined;
  } catch {
    return undefined;
  }
}

/** This thread's id (Linux), or undefined. */
function threadId(): number | undefined {
  try {
    const tid = Number(readlinkSync("/proc/thread-self").split("/").pop());
    return Number.isSafeInteger(tid) && tid > 0 ? tid : undefined;
  } catch {
    return undefined;
  }
}

/**
 * A worker running this file as TypeScript needs tsx's loader registered inside the worker
 * (Node 20 does not apply the parent's `--import tsx` hooks to a worker's entry), so the entry is
 * a two-line module that registers tsx and imports this file. Built to JavaScript, the file is
 * its own entry.
 */
function jobMessage(job: TrainJob): { bare: TrainJob; transferList: ArrayBuffer[] } {
  // The matrix moves to the worker (no copy on this thread: 120 MB at 1M users); it is a copy
  // of the one the builder keeps (als-matrix-rows.ts), taken for this training.
  const r = job.ratings;
  // The ids stay here (the model gets the items' back on arrival): only numbers cross.
  const bare: TrainJob = { settings: job.settings, ratings: { ...r, users: [], items: [] } };
  const transferList = [r.userPtr, r.userCols, r.userVals, r.itemPtr, r.itemRows, r.itemVals].map(
    (a) => a.buffer as ArrayBuffer,
  );
  return { bare, transferList };
}

function spawn({ bare, transferList }: { bare: TrainJob; transferList: ArrayBuffer[] }): Worker {
  const self = import.meta.url;
  done.workers++;
  if (!self.endsWith(".ts"))
    return new Worker(new URL(self), { workerData: { als: bare }, transferList });
  const api = pathToFileURL(createRequire(self).resolve("tsx/esm/api")).href.replace(
    /\.cjs$/,
    ".mjs",
  );
  const entry = `import { register } from ${JSON.stringify(api)}; register(); await import(${JSON.stringify(self)});`;
  return new Worker(new URL(`data:text/javascript,${encodeURIComponent(entry)}`), {
    workerData: { als: bare },
    transferList,
  });
}

/**
 * Trains in a new worker thread; rejects if the worker fails; `signal` terminates it. The model
 * comes back in its served form (item factors: a served model solves user vectors when asked,
 * als-model.ts) with its offline metrics (`offline`: als-eval.ts), computed in the worker too.
 */
export function trainInWorker(
  job: TrainJob,
  o: { signal?: AbortSignal; onIteration?: (it: number) => void } = {},
): Promise<ServedModel> {
  // The rows' arrays go to the worker; of the ids only the items' are kept (no user factors
  // come back, so no user ids are needed). No closure below refers to `job`, so nothing keeps
  // its user id strings.
  const users = job.ratings.userPtr.length - 1;
  const items = job.ratings.items;
  const settings = job.settings;
  const small = job.ratings.userCols.length <= KEEP_MAX_RATINGS;
  const message = jobMessage(job);
  const reused = takeKept();
  let w: Worker;
  let tid = reused?.tid;
  try {
    if (reused) {
      w = reused.w;
      if (tid !== undefined) training.set(tid, taskCpu(tid));
      w.postMessage({ als: message.bare }, message.transferList);
    } else w = spawn(message);
  } catch (err) {
    if (tid !== undefined) training.delete(tid);
    if (reused) void reused.w.terminate();
    return Promise.reject(err instanceof Error ? err : new Error(String(err)));
  }
  return new Promise((resolve, reject) => {
    let settled = false;
    /** Ends this training: its listeners go, and the worker is kept (`keepIt`) or terminated. */
    const settle = (f: () => void, keepIt = false) => {
      // A worker ended without its reply (aborted, failed): its CPU is no longer readable.
      if (tid !== undefined) training.delete(tid);
      if (settled) return;
      settled = true;
      o.signal?.removeEventListener("abort", abort);
      w.off("message", onMessage);
      w.off("error", onError);
      w.off("exit", onExit);
      if (keepIt) keep(w, tid);
      else void w.terminate();
      f();
    };
    const abort = () => settle(() => reject(new Error("ALS training aborted")));
    const onMessage = (m: WorkerReply) => {
      if (m.iteration !== undefined) o.onIteration?.(m.iteration);
      if (m.tid !== undefined) training.set((tid = m.tid), 0);
      // Counted before settle() takes its thread out of `training` (no read comes between).
      if (m.V || m.error) {
        done.trainings++;
        done.cpuSeconds += m.cpuSeconds ?? 0;
      }
      if (m.V)
        settle(
          () =>
            resolve({
              settings,
              items,
              V: m.V!,
              users,
              ...(m.YtY ? { YtY: m.YtY } : {}),
              ...(m.offline ? { offline: m.offline } : {}),
            }),
          small,
        );
      if (m.error) settle(() => reject(new Error(m.error)));
    };
    const onError = (err: Error) => settle(() => reject(err));
    const onExit = (code: number) =>
      settle(() => reject(new Error(`ALS worker exited with code ${code} before its model`)));
    o.signal?.addEventListener("abort", abort);
    w.on("message", onMessage);
    w.on("error", onError);
    w.on("exit", onExit);
  });
}

/**
 * Lowers this thread's scheduling priority (nice 10), so on a machine with fewer free cores than
 * busy threads the training takes the CPU left over by the event loop that serves and ingests,
 * not a share of it: at the same priority a training (seconds of CPU at 12k users, minutes at
 * 1M) on a 2-core machine makes the serving loop wait for a core (a probe of bench step 4's app,
 * 50k events: two trainings at 25-50% of a core for ~15 s in the minute after the ingest, when
 * step 4 asks its warm-up calls). A nice-10 thread still gets ~10% of a
 * core that a nice-0 thread wants, so a busy machine delays a model, never stops it.
 * Linux only: there a worker is a thread of the process, `/proc/thread-self` names its id, and
 * setpriority() on a thread id changes that thread alone. Elsewhere (or if refused) it trains
 * at the normal priority, as before. Returns the nice value set, or undefined.
 */
export function lowerTrainingPriority(): number | undefined {
  try {
    const tid = threadId();
    if (tid === undefined) return undefined;
    // Never raised: a process started niced keeps its own, lower, priority.
    const nice = Math.max(getPriority(tid), constants.priority.PRIORITY_BELOW_NORMAL);
    setPriority(tid, nice);
    return nice;
  } catch {
    return undefined;
  }
}

/**
 * Trains one job in this worker and posts the model back. `from`: this thread's CPU seconds
 * before it (the reply counts this training's alone; a worker's first counts its start too).
 */
function trainHere(
  port: NonNullable<typeof parentPort>,
  { ratings, settings }: TrainJob,
  from: number,
) {
  try {
    // No user factors come back (the served model solves users when asked): none are built.
    const model = trainAls(
      ratings,
      settings,
      (iteration) => port.postMessage({ iteration }),
      undefined,
      { userFactors: false },
    );
    // YᵀY + λI, which the offline figures and every fold-in of the served model start from:
    // computed here, not on the event loop at the model's first fold-in (230 ms at 50k items).
    const YtY =
      settings.kind === "implicit" ? gram(model.V, settings.rank, settings.reg) : undefined;
    // The model's offline figures, here and not on the event loop.
    const offline = evaluateAls(ratings, model, YtY ? { YtY } : {});
    const cpuSeconds = (threadCpuSeconds() ?? from) - from;
    port.postMessage(
      { V: model.V, ...(YtY ? { YtY } : {}), offline, cpuSeconds } satisfies WorkerReply,
      [model.V.buffer as ArrayBuffer, ...(YtY ? [YtY.buffer as ArrayBuffer] : [])],
    );
  } catch (err) {
    port.postMessage({
      error: String((err as Error).stack ?? err),
      cpuSeconds: (threadCpuSeconds() ?? from) - from,
    } satisfies WorkerReply);
  }
}

if (!isMainThread && parentPort && (workerData as { als?: TrainJob } | null)?.als) {
  const port = parentPort;
  const tid = threadId();
  if (tid !== undefined) port.postMessage({ tid } satisfies WorkerReply);
  lowerTrainingPriority();
  trainHere(port, (workerData as { als: TrainJob }).als, 0);
  // Kept for the next training (trainInWorker): each comes as a message.
  port.on("message", (m: { als?: TrainJob }) => {
    if (m.als) trainHere(port, m.als, threadCpuSeconds() ?? 0);
  });
}
