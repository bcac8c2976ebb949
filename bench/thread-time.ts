/**
 * Which of a process's threads did what, for step 2's breakdown. Node 20 names every thread
 * "node", so threads are told apart by what they do: the libuv pool is found by giving it work
 * (`libuvPoolTids`), threads that start after the app did are the app's (LevelDB's background
 * thread, the ALS workers), and the rest that were there before are V8's platform threads (GC
 * helpers, compilation) and node's own. Linux only (/proc); empty maps elsewhere.
 */
import { pbkdf2 } from "node:crypto";
import { readdir } from "node:fs/promises";
import { threadSchedSeconds } from "./util.js";

/** Seconds on a CPU so far of each thread of `pid` but its main one, by tid. */
export async function threadRunSeconds(pid: number): Promise<Map<number, number>> {
  const out = new Map<number, number>();
  const tids = (await readdir(`/proc/${pid}/task`).catch(() => [] as string[])).map(Number);
  for (const tid of tids) {
    if (tid === pid) continue;
    const { run } = await threadSchedSeconds(pid, tid);
    if (Number.isFinite(run)) out.set(tid, run);
  }
  return out;
}

/**
 * The threads of this process's libuv pool (where classic-level runs LevelDB's reads, writes and
 * iterators, and node its fs calls): twice as many pbkdf2 calls as the pool has threads run on
 * it at once, and the threads whose CPU time rose by at least a third of one call's are the
 * pool's. Costs ~0.1-0.3 s of CPU, before anything is measured.
 */
export async function libuvPoolTids(): Promise<Set<number>> {
  const size = Number(process.env.UV_THREADPOOL_SIZE) || 4;
  const oneCall = () =>
    new Promise<number>((resolve, reject) => {
      const t0 = performance.now();
      pbkdf2("reco", "bench", 20_000, 32, "sha256", (err) =>
        err ? reject(err) : resolve(performance.now() - t0),
      );
    });
  const callMs = await oneCall(); // wall time of one call, an upper bound of its CPU time
  const before = await threadRunSeconds(process.pid);
  await Promise.all(Array.from({ length: size * 2 }, oneCall));
  const after = await threadRunSeconds(process.pid);
  const out = new Set<number>();
  for (const [tid, s] of after)
    if ((s - (before.get(tid) ?? 0)) * 1000 >= Math.min(callMs, 50) / 3) out.add(tid);
  return out;
}

/**
 * Samples every thread's CPU time every `everyMs` until stopped, so that a thread that ends
 * during the run (an ALS training's worker) still counts up to its last sample.
 */
export function sampleThreads(pid: number, everyMs = 250) {
  const last = new Map<number, number>();
  const take = async () => {
    for (const [tid, s] of await threadRunSeconds(pid)) last.set(tid, s);
  };
  let pending = take();
  const timer = setInterval(() => {
    pending = pending.then(take);
  }, everyMs);
  return {
    /** The last CPU seconds seen of each thread (the main one not included). */
    async stop(): Promise<Map<number, number>> {
      clearInterval(timer);
      await pending;
      await take();
      return last;
    },
  };
}

/** CPU seconds of a run by kind of thread (main thread excluded). */
export interface ThreadShares {
  /** The libuv pool: LevelDB's calls (classic-level), fs. */
  libuv: number;
  /** Threads started during the run: LevelDB's background compaction, ALS workers, ... */
  started: number;
  /** Threads there before the run but not the pool: V8's platform threads (GC, compiler). */
  v8: number;
}

export function threadShares(
  before: Map<number, number>,
  seen: Map<number, number>,
  pool: Set<number>,
): ThreadShares {
  const out: ThreadShares = { libuv: 0, started: 0, v8: 0 };
  for (const [tid, s] of seen) {
    const d = s - (before.get(tid) ?? 0);
    if (pool.has(tid)) out.libuv += d;
    else if (before.has(tid)) out.v8 += d;
    else out.started += d;
  }
  return out;
}
