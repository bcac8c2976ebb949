import { describe, it, expect } from "vitest";
import { map } from "rxjs";
import { defineStage, port, type InputBatch, type StageContext } from "../runtime/index.js";
import { createStageState } from "../state/store.js";
import {
  encodeEnvelope,
  createStageHandler,
  loadStageHandler,
  type PortTopology,
} from "../actors/host/index.js";
import type { InputMessage } from "../actors/host/index.js";
import { fakeOutput } from "./helpers/stage.js";

interface Rec {
  k: string;
  s: number;
}

/** Passes records through on `out`, records on `odd` the odd positions; remembers its batches. */
const echo = defineStage({
  name: "echo",
  input: port<Rec>(),
  ports: { out: port<Rec>(), odd: port<number>() },
  create(ctx: StageContext<{ seen: InputBatch<Rec>[]; fail?: string }>) {
    return (batches$) =>
      batches$.pipe(
        map((b) => {
          ctx.settings.seen.push(b);
          if (b.records.some((r) => r.k === ctx.settings.fail)) throw new Error("bad record");
          ctx.count("in", b.records.length);
          return { out: b.records, odd: b.records.map((r) => r.s).filter((s) => s % 2 === 1) };
        }),
      );
  },
});

function setup(state = createStageState(), fail?: string) {
  const { out, rec } = fakeOutput();
  const seen: InputBatch<Rec>[] = [];
  const odd: number[] = [];
  const topology: PortTopology<typeof echo.ports> = {
    out: "reco.echo.3",
    odd: (s, o) => {
      expect(o).toBe(out);
      odd.push(s);
    },
  };
  const h = createStageHandler(echo, state, out, {
    settings: { seen, ...(fail !== undefined ? { fail } : {}) },
    topology,
  });
  let n = 0;
  const feed = (wm: number, recs: Rec[], lastUpTo = n) => {
    n++;
    const msg: InputMessage = {
      seq: n,
      subject: "reco.in.3",
      data: encodeEnvelope(n, wm, recs),
      headers: {},
    };
    h.handle(msg, lastUpTo);
  };
  return { h, rec, seen, odd, feed, state };
}

describe("stage adapter (a defineStage stage as a StageHandler)", () => {
  it("should hand the hop's records over as one batch with its position, and emit to the port's subject within handle", () => {
    const { rec, seen, odd, feed } = setup();
    feed(100, [
      { k: "a", s: 1 },
      { k: "b", s: 2 },
    ]);
    expect(seen).toEqual([
      {
        records: [
          { k: "a", s: 1 },
          { k: "b", s: 2 },
        ],
        position: { from: 0, upTo: 1 },
        progress: { from: -1, to: 100 },
      },
    ]);
    expect(rec.emits).toEqual([
      ["reco.echo.3", { k: "a", s: 1 }],
      ["reco.echo.3", { k: "b", s: 2 }],
    ]);
    expect(odd).toEqual([1]);
    expect(rec.counts).toEqual({ in: 2 });
  });

  it("should keep event-time progress once for the stage: never back, persisted, stamped and touched on every input", () => {
    const { rec, seen, feed, state } = setup();
    feed(100, []);
    feed(50, []); // an older progress (another upstream) does not move it back
    feed(200, [], 0); // and `from` is the host's lastUpTo
    expect(seen.map((b) => b.progress)).toEqual([
      { from: -1, to: 100 },
      { from: 100, to: 100 },
      { from: 100, to: 200 },
    ]);
    expect(seen[2]!.position).toEqual({ from: 0, upTo: 3 });
    expect(state.meta.progress).toBe(200);
    expect(rec.progress).toEqual([100, 100, 200]);
    // Only hop ports are touched (progress flows downstream without records); sinks are not.
    expect(rec.touches).toEqual(["reco.echo.3", "reco.echo.3", "reco.echo.3"]);
    // A new incarnation on the same state starts from the persisted progress.
    const again = setup(state);
    again.feed(150, []);
    expect(again.seen[0]!.progress).toEqual({ from: 200, to: 200 });
  });

  it("should throw from handle what the stage threw (the host counts the attempt and restarts it)", () => {
    const { rec, feed } = setup(createStageState(), "x");
    expect(() => feed(1, [{ k: "x", s: 1 }])).toThrow("bad record");
    expect(rec.emits).toEqual([]);
  });

  it("should refuse a topology that leaves a port unmapped (its records would be lost silently)", () => {
    const { out } = fakeOutput();
    expect(() =>
      createStageHandler(echo, createStageState(), out, {
        settings: { seen: [] },
        topology: { out: "reco.echo.0" } as unknown as PortTopology<typeof echo.ports>,
      }),
    ).toThrow(/port odd goes nowhere/);
  });

  it("should give the event loop back between restore slices when loading", async () => {
    const order: string[] = [];
    const sliced = defineStage({
      name: "sliced",
      input: port<number>(),
      ports: {},
      create: () => {
        function* restore(): Generator<void, void, void> {
          order.push("slice 1");
          yield;
          order.push("slice 2");
        }
        return { operator: (b$) => b$.pipe(map(() => ({}))), view: {}, restore: restore() };
      },
    });
    const { out } = fakeOutput();
    setImmediate(() => order.push("other work"));
    await loadStageHandler(sliced, createStageState(), out, { settings: undefined, topology: {} });
    expect(order).toEqual(["slice 1", "other work", "slice 2"]);
  });
});
