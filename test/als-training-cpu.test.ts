import { describe, expect, it } from "vitest";
import {
  createRatingsBuilder,
  trainingsDone,
  trainInWorker,
  IMPLICIT_DEFAULTS,
} from "../actors/sources/index.js";

/**
 * Bench step 2 tells ALS trainings apart from the CPU per event: each finished training adds its
 * worker thread's CPU (Linux: /proc/thread-self/schedstat) to the process's tally.
 */
describe("ALS trainings' CPU", () => {
  it("is counted once per finished training, from its worker thread, and read while it trains", async () => {
    const b = createRatingsBuilder();
    for (let u = 0; u < 200; u++)
      for (let i = 0; i < 20; i++) if ((u + i) % 3) b.add(`u${u}`, `i${i}`, 1);
    const before = trainingsDone();
    let during = before;
    await trainInWorker(
      { ratings: b.build(), settings: { ...IMPLICIT_DEFAULTS, rank: 8, iterations: 5, reg: 0.1 } },
      // While it trains (after its first iteration), its CPU so far is counted already.
      { onIteration: (i) => void (i === 2 && (during = trainingsDone())) },
    );
    const after = trainingsDone();
    expect(during.trainings).toBe(before.trainings);
    expect(after.trainings).toBe(before.trainings + 1);
    if (process.platform !== "linux") return;
    // The worker's own time: above zero, and below this process's CPU since it started.
    const spent = after.cpuSeconds - before.cpuSeconds;
    expect(spent).toBeGreaterThan(0);
    expect(during.cpuSeconds).toBeGreaterThan(before.cpuSeconds);
    expect(during.cpuSeconds).toBeLessThanOrEqual(after.cpuSeconds);
    const cpu = process.cpuUsage();
    expect(spent).toBeLessThan((cpu.user + cpu.system) / 1e6);
  });
});

/**
 * A worker's start (node's loaders, the module) was 0.15-0.2 s of CPU: half of each training of a
 * MovieLens replay, which trains every hour of event time. A worker that finished is kept for
 * the next training; one that was aborted is not.
 */
describe("the ALS worker, kept between trainings", () => {
  const ratings = () => {
    const b = createRatingsBuilder();
    for (let u = 0; u < 120; u++)
      for (let i = 0; i < 15; i++) if ((u * 7 + i) % 4) b.add(`u${u}`, `i${i}`, 1 + (u % 3));
    return b.build();
  };
  const settings = { ...IMPLICIT_DEFAULTS, rank: 6, iterations: 4, reg: 0.1 };

  it("trains the next model in the same thread, to the same bits as a new one, counted once", async () => {
    const first = await trainInWorker({ ratings: ratings(), settings });
    const before = trainingsDone();
    const second = await trainInWorker({ ratings: ratings(), settings });
    const after = trainingsDone();
    // No worker started for the second; the same model as the first (a seeded training).
    expect(after.workers).toBe(before.workers);
    expect(after.trainings).toBe(before.trainings + 1);
    expect(Array.from(second.V)).toEqual(Array.from(first.V));
    expect(Array.from(second.YtY!)).toEqual(Array.from(first.YtY!));
  });

  it("starts a new worker after an aborted training; a kept one's training counts its own CPU", async () => {
    const ac = new AbortController();
    const aborted = trainInWorker(
      { ratings: ratings(), settings: { ...settings, iterations: 100_000 } },
      { signal: ac.signal, onIteration: (i) => void (i === 2 && ac.abort()) },
    );
    await expect(aborted).rejects.toThrow("aborted");
    const t0 = trainingsDone();
    const next = await trainInWorker({ ratings: ratings(), settings });
    const t1 = trainingsDone();
    const again = await trainInWorker({ ratings: ratings(), settings });
    const t2 = trainingsDone();
    expect([t1.workers - t0.workers, t2.workers - t1.workers]).toEqual([1, 0]);
    expect(Array.from(again.V)).toEqual(Array.from(next.V));
    if (process.platform !== "linux") return;
    // The same training: in a new worker with its start (~0.15 s), in the kept one without.
    const fresh = t1.cpuSeconds - t0.cpuSeconds;
    const reused = t2.cpuSeconds - t1.cpuSeconds;
    expect(reused).toBeGreaterThan(0);
    expect(reused).toBeLessThan(fresh);
  });
});
