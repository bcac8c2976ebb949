import { describe, expect, it } from "vitest";
import { Worker } from "node:worker_threads";
import { procCpuSeconds, threadCpuSeconds } from "../bench/util.js";

/**
 * Step 4 splits the server process's CPU per request into its main thread's and the rest
 * (GC helpers, LevelDB, the ALS worker): a busy worker thread must show in the process's CPU
 * and not in the main thread's, and a busy main thread in both.
 */
/** A fixed amount of work (0.2-1 s of CPU here), whatever else the machine does meanwhile. */
const WORK = `let x = 0; for (let i = 0; i < 1.5e8; i++) x += Math.sqrt(i); x`;
const spin = () =>
  Function(`return (() => { ${WORK.replace(/ x$/, " return x;")} })()`)() as number;

describe("bench CPU per thread (/proc)", () => {
  it("tells the main thread's CPU from a worker thread's", async () => {
    const pid = process.pid;
    const p0 = await procCpuSeconds(pid);
    const m0 = await threadCpuSeconds(pid);
    // The work in a worker while the main thread waits.
    const worker = new Worker(
      `${WORK.replace(/ x$/, "")}; require("node:worker_threads").parentPort.postMessage(x);`,
      { eval: true },
    );
    await new Promise((resolve, reject) => worker.once("message", resolve).once("error", reject));
    await worker.terminate();
    const p1 = await procCpuSeconds(pid);
    const m1 = await threadCpuSeconds(pid);
    const inWorker = p1 - p0;
    expect(inWorker).toBeGreaterThan(0.1);
    expect(m1 - m0).toBeLessThan(inWorker / 3);
    // The same work on the main thread.
    spin();
    const p2 = await procCpuSeconds(pid);
    const m2 = await threadCpuSeconds(pid);
    expect(m2 - m1).toBeGreaterThan(0.1);
    expect(p2 - p1).toBeGreaterThanOrEqual(m2 - m1 - 0.05);
    expect(Number.isNaN(await threadCpuSeconds(pid, 1 << 30))).toBe(true);
  });
});
