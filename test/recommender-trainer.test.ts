import { afterEach, describe, expect, it, vi } from "vitest";
import { createTrainer, type TrainFn } from "../actors/stages/index.js";
import type { AlsModel, AlsSettings, Ratings } from "../actors/sources/index.js";

const settings = {} as AlsSettings;
const matrix = (at: number) => ({ users: [`at${at}`] }) as unknown as Ratings;

/** A training function that keeps each job until `finish(x)` resolves it. */
function held() {
  const jobs: { ratings: Ratings; done: (m: AlsModel) => void }[] = [];
  const train: TrainFn = (ratings) =>
    new Promise((resolve) => jobs.push({ ratings, done: resolve }));
  return { jobs, train };
}

const tick = () => new Promise<void>((resolve) => setImmediate(resolve));

describe("ALS trainer", () => {
  it("builds the matrix of a point only when its training starts: points superseded while waiting are never built", async () => {
    const { jobs, train } = held();
    const served: number[] = [];
    const trainer = createTrainer({ train, onModel: (_k, at) => served.push(at) });
    const built: number[] = [];
    const submit = (at: number) =>
      trainer.submit("implicit", at, () => (built.push(at), matrix(at)), settings);
    submit(1); // starts at once
    for (let at = 2; at <= 50; at++) submit(at); // each replaces the one waiting
    expect(built).toEqual([1]);
    jobs[0]!.done({} as AlsModel);
    await tick();
    // The newest point, built when its training started; 2..49 never were.
    expect(built).toEqual([1, 50]);
    expect(jobs[1]!.ratings.users).toEqual(["at50"]);
    jobs[1]!.done({} as AlsModel);
    await tick();
    expect(served).toEqual([1, 50]);
    expect(trainer.busy()).toBe(false);
  });

  describe("a delayed training (a restart's untrained point)", () => {
    afterEach(() => void vi.useRealTimers());

    it("builds nothing before its delay, then trains as any other", () => {
      vi.useFakeTimers();
      const { jobs, train } = held();
      const trainer = createTrainer({ train, onModel: () => undefined });
      const built: number[] = [];
      trainer.submit("implicit", 7, () => (built.push(7), matrix(7)), settings, 5_000);
      expect(trainer.busy()).toBe(true); // waiting counts
      vi.advanceTimersByTime(4_999);
      expect(built).toEqual([]);
      vi.advanceTimersByTime(1);
      expect(built).toEqual([7]);
      expect(jobs.map((j) => j.ratings.users)).toEqual([["at7"]]);
    });

    it("gives way to a newer point submitted meanwhile, which starts at once", () => {
      vi.useFakeTimers();
      const { jobs, train } = held();
      const trainer = createTrainer({ train, onModel: () => undefined });
      const built: number[] = [];
      trainer.submit("implicit", 7, () => (built.push(7), matrix(7)), settings, 5_000);
      trainer.submit("implicit", 9, () => (built.push(9), matrix(9)), settings);
      expect(built).toEqual([9]);
      vi.advanceTimersByTime(10_000);
      // The delayed point was superseded while it waited: never built.
      expect(built).toEqual([9]);
      expect(jobs).toHaveLength(1);
    });

    it("never starts once the trainer stopped", () => {
      vi.useFakeTimers();
      const { jobs, train } = held();
      const trainer = createTrainer({ train, onModel: () => undefined });
      trainer.submit("implicit", 7, () => matrix(7), settings, 5_000);
      trainer.stop();
      vi.advanceTimersByTime(10_000);
      expect(jobs).toHaveLength(0);
    });
  });

  it("trains nothing for a point whose matrix is lost, and goes on with the next", async () => {
    const { jobs, train } = held();
    const trainer = createTrainer({ train, onModel: () => undefined });
    trainer.submit("implicit", 1, () => undefined, settings);
    expect(jobs).toHaveLength(0);
    expect(trainer.busy()).toBe(false);
    trainer.submit("implicit", 2, () => matrix(2), settings);
    expect(jobs.map((j) => j.ratings.users)).toEqual([["at2"]]);
  });
});
