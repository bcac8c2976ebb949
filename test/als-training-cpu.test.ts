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
