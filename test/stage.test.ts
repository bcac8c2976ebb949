import { describe, it, expect } from "vitest";
import { delay, filter, map, take, type SchedulerLike } from "rxjs";
import { TestScheduler } from "rxjs/testing";
import {
  createStageLogic,
  defineStage,
  port,
  startStage,
  StageContractError,
  type InputBatch,
  type StageContext,
  type StageOutputs,
} from "../runtime/index.js";
import { createStageState } from "../state/store.js";

/** A toy stage: sums `v` per key into state and emits the new sums; negative values are "bad". */
const summer = defineStage({
  name: "summer",
  input: port<{ k: string; v: number }>(),
  ports: { sums: port<{ k: string; sum: number }>(), bad: port<{ k: string }>() },
  create(ctx: StageContext<{ scale: number }>) {
    const sums = ctx.state.map<number>("sum");
    return (batches$) =>
      batches$.pipe(
        map(({ records }) => {
          const out: { k: string; sum: number }[] = [];
          const bad: { k: string }[] = [];
          for (const r of records) {
            if (r.v < 0) {
              bad.push({ k: r.k });
              ctx.count("bad");
              continue;
            }
            const sum = (sums.get(r.k) ?? 0) + r.v * ctx.settings.scale;
            sums.set(r.k, sum);
            out.push({ k: r.k, sum });
          }
          return { sums: out, bad };
        }),
      );
  },
});

type SummerOutputs = StageOutputs<typeof summer.ports>;

function context(scheduler?: SchedulerLike) {
  const counts: Record<string, number> = {};
  const ctx: StageContext<{ scale: number }> = {
    name: "summer",
    state: createStageState(),
    settings: { scale: 2 },
    scheduler: scheduler ?? new TestScheduler(() => undefined),
    count: (name, n = 1) => void (counts[name] = (counts[name] ?? 0) + n),
  };
  return { ctx, counts };
}

let upTo = 0;
function batch<R>(records: R[], progress = -1): InputBatch<R> {
  upTo++;
  return {
    records,
    position: { from: upTo - 1, upTo },
    progress: { from: progress, to: progress },
  };
}

describe("defineStage", () => {
  it("should refuse a stage or port name that could not be a metric label or a topology key", () => {
    const base = { input: port<number>(), create: () => map(() => ({})) };
    expect(() => defineStage({ ...base, name: "Bad Name", ports: {} })).toThrow(TypeError);
    expect(() => defineStage({ ...base, name: "ok", ports: { "a.b": port<number>() } })).toThrow(
      /bad port name/,
    );
    expect(defineStage({ ...base, name: "ok-2", ports: { late: port<number>() } }).name).toBe(
      "ok-2",
    );
  });
});

describe("a stage as an RxJS operator", () => {
  it("should map batches to outputs on named ports (marble test, virtual time)", () => {
    const ts = new TestScheduler((a, b) => expect(a).toEqual(b));
    const { ctx, counts } = context(ts);
    const { operator, view } = createStageLogic(summer, ctx);
    expect(view).toBeUndefined();
    ts.run(({ cold, expectObservable }) => {
      const input = cold("-a--b-|", {
        a: batch([
          { k: "x", v: 1 },
          { k: "y", v: -1 },
        ]),
        b: batch([{ k: "x", v: 3 }]),
      });
      expectObservable(input.pipe(operator)).toBe("-A--B-|", {
        A: { sums: [{ k: "x", sum: 2 }], bad: [{ k: "y" }] },
        B: { sums: [{ k: "x", sum: 8 }], bad: [] },
      } satisfies Record<string, SummerOutputs>);
    });
    expect(counts).toEqual({ bad: 1 });
  });
});

describe("startStage", () => {
  it("should hand a batch's outputs over before push returns", () => {
    const seen: SummerOutputs[] = [];
    const run = startStage(summer, context().ctx, (o) => seen.push(o));
    run.push(batch([{ k: "x", v: 1 }]));
    expect(seen).toEqual([{ sums: [{ k: "x", sum: 2 }], bad: [] }]);
    run.push(batch([]));
    expect(seen).toHaveLength(2);
  });

  it("should throw from push what the operator threw, and keep throwing (the host restarts it)", () => {
    const boom = defineStage({
      name: "boom",
      input: port<number>(),
      ports: { out: port<number>() },
      create: () => (b$) =>
        b$.pipe(
          map((b) => {
            if (b.records.includes(13)) throw new Error("unlucky");
            return { out: b.records };
          }),
        ),
    });
    const seen: unknown[] = [];
    const run = startStage(boom, context().ctx as StageContext<unknown>, (o) => seen.push(o));
    run.push(batch([1]));
    expect(() => run.push(batch([13]))).toThrow("unlucky");
    expect(() => run.push(batch([2]))).toThrow("unlucky");
    expect(seen).toEqual([{ out: [1] }]);
  });

  it("should refuse an operator that emits outside a batch: outputs must come with their input", () => {
    const ts = new TestScheduler(() => undefined);
    const late = defineStage({
      name: "late",
      input: port<number>(),
      ports: { out: port<number>() },
      create: (ctx: StageContext<unknown>) => (b$) =>
        b$.pipe(
          delay(10, ctx.scheduler),
          map((b) => ({ out: b.records })),
        ),
    });
    const seen: unknown[] = [];
    const run = startStage(late, { ...context(ts).ctx, settings: undefined }, (o) => seen.push(o));
    run.push(batch([1])); // nothing yet: the delay holds it
    ts.flush(); // emitted now, outside push
    expect(seen).toEqual([]);
    expect(() => run.push(batch([2]))).toThrow(StageContractError);
  });

  it("should refuse an operator that completes: a stage runs as long as its input", () => {
    const once = defineStage({
      name: "once",
      input: port<number>(),
      ports: { out: port<number>() },
      create: () => (b$) =>
        b$.pipe(
          take(1),
          map((b) => ({ out: b.records })),
        ),
    });
    const run = startStage(once, context().ctx as StageContext<unknown>, () => undefined);
    // The batch that completed it fails: the operator would take no more input.
    expect(() => run.push(batch([1]))).toThrow(/completed/);
    expect(() => run.push(batch([2]))).toThrow(/completed/);
  });

  it("should allow a batch to produce nothing (a filter) without breaking the run", () => {
    const evens = defineStage({
      name: "evens",
      input: port<number>(),
      ports: { out: port<number>() },
      create: () => (b$) =>
        b$.pipe(
          filter((b) => b.records.some((r) => r % 2 === 0)),
          map((b) => ({ out: b.records.filter((r) => r % 2 === 0) })),
        ),
    });
    const seen: unknown[] = [];
    const run = startStage(evens, context().ctx as StageContext<unknown>, (o) => seen.push(o));
    run.push(batch([1, 3]));
    run.push(batch([1, 4]));
    expect(seen).toEqual([{ out: [4] }]);
  });

  it("should run the restore before the first batch, in slices, and refuse a batch before", () => {
    const steps: number[] = [];
    const indexed = defineStage({
      name: "indexed",
      input: port<number>(),
      ports: { out: port<number>() },
      create: () => {
        let slices = 0;
        function* restore(): Generator<void, void, void> {
          for (let s = 0; s < 3; s++) {
            steps.push(s);
            slices++;
            if (s < 2) yield;
          }
        }
        return {
          operator: (b$) => b$.pipe(map(() => ({ out: [slices] }))),
          view: { slices: () => slices },
          restore: restore(),
        };
      },
    });
    const seen: unknown[] = [];
    const run = startStage(indexed, context().ctx as StageContext<unknown>, (o) => seen.push(o));
    expect(() => run.push(batch([1]))).toThrow(/before restored/);
    expect(run.restoreStep()).toBe(true);
    expect(run.view.slices()).toBe(1);
    run.restoreAll();
    expect(run.restoreStep()).toBe(false);
    expect(steps).toEqual([0, 1, 2]);
    run.push(batch([1]));
    expect(seen).toEqual([{ out: [3] }]);
  });
});
