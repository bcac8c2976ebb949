import { describe, expect, it } from "vitest";
import { createStageState } from "../state/store.js";
import {
  decodeEnvelope,
  encodeEnvelope,
  chainSpec,
  cutSnapshot,
  isEmptySnapshot,
  joinable,
  joinSnapshots,
  memberCounts,
  type ChainHandler,
  type PlainSnapshot,
} from "../actors/host/index.js";
import { USER_PATH, userPathInstances } from "../bin/pipeline/plan-snapshots.js";
import type { StageHandler, StageOutput, StageSpec } from "../actors/host/index.js";
import { planPath, type ChainRule } from "../bin/pipeline/chains.js";
import { startTierOfStage } from "../bin/pipeline/units.js";

/*
 * The chain as the host sees it (actors/host/host-chain.ts) and the rule that forms it
 * (bin/pipeline/chains.ts), without a server: one handler per input message, members fed in
 * memory, their state, counts and outputs kept apart.
 */

function recordingOutput() {
  const calls = {
    emits: [] as [string, unknown][],
    touches: [] as string[],
    counts: {} as Record<string, number>,
    progress: -1,
  };
  const out: StageOutput = {
    emit: (s, r) => void calls.emits.push([s, r]),
    touch: (s) => void calls.touches.push(s),
    setProgress: (wm) => void (calls.progress = wm),
    raw: () => undefined,
    kvPut: () => undefined,
    count: (name, n = 1) => void (calls.counts[name] = (calls.counts[name] ?? 0) + n),
  };
  return { out, calls };
}

/**
 * A member that adds `by` to each record's `n`, counts records in its map `seen` and as `in`,
 * and emits to `to`, touching it as the stage adapter does.
 */
function adder(stage: string, subject: string, to: string | undefined, by: number) {
  const got: { recs: number[]; lastUpTo: number; wm: number }[] = [];
  const spec: StageSpec<StageHandler> = {
    stage,
    partition: 2,
    stream: "HOPS",
    subject,
    input: "envelope",
    batching: "per-input",
    create: (state, out) => {
      const seen = state.map<number>("seen");
      state.meta.progress = -1;
      return {
        handle(msg, lastUpTo) {
          const env = decodeEnvelope<{ n: number }>(msg.data);
          got.push({ recs: env.recs.map((r) => r.n), lastUpTo, wm: env.wm });
          seen.set("all", (seen.get("all") ?? 0) + env.recs.length);
          out.count("in", env.recs.length);
          state.meta.progress = env.wm;
          out.setProgress(env.wm);
          if (to === undefined) return;
          for (const r of env.recs) out.emit(to, { n: r.n + by });
          out.touch(to);
        },
      };
    },
  };
  return { spec, got };
}

describe("a chain of stages in one host task", () => {
  it("hands each member's output to the next within the same input, in memory", async () => {
    const a = adder("a", "in.2", "a.2", 10);
    const b = adder("b", "a.2", "b.2", 100);
    const c = adder("c", "b.2", "c.2", 1000);
    const spec = chainSpec([a.spec, b.spec, c.spec], { published: (s) => s === "b.2" });
    expect(spec.stage).toBe("a+b+c");
    expect(spec.subject).toBe("in.2");
    const state = createStageState();
    state.meta.seq = 40;
    const { out, calls } = recordingOutput();
    const chain = (await spec.create(state, out)) as ChainHandler;
    const data = encodeEnvelope(7, 5000, [{ n: 1 }, { n: 2 }], 0);
    chain.handle({ seq: 41, subject: "in.2", data, headers: {} }, 6);
    expect(a.got).toEqual([{ recs: [1, 2], lastUpTo: 6, wm: 5000 }]);
    // Later members see the chain's input position, and the progress passed on.
    expect(b.got).toEqual([{ recs: [11, 12], lastUpTo: 40, wm: 5000 }]);
    expect(c.got).toEqual([{ recs: [111, 112], lastUpTo: 40, wm: 5000 }]);
    // b's output is read outside the chain too; c's leaves it; a's stays inside.
    expect(calls.emits).toEqual([
      ["b.2", { n: 111 }],
      ["b.2", { n: 112 }],
      ["c.2", { n: 1111 }],
      ["c.2", { n: 1112 }],
    ]);
    expect(calls.touches).toEqual(["b.2", "c.2"]);
    expect(calls.progress).toBe(5000);
    // An input with no records still moves progress down the chain (a touch).
    chain.handle(
      { seq: 42, subject: "in.2", data: encodeEnvelope(8, 6000, [], 7), headers: {} },
      7,
    );
    expect(c.got[1]).toEqual({ recs: [], lastUpTo: 41, wm: 6000 });
    expect(chain.member("b")).toBeDefined();
    expect(chain.member("window")).toBeUndefined();
  });

  it("keeps each member's maps, metadata and counts under its own name", async () => {
    const a = adder("a", "in.2", "a.2", 1);
    const b = adder("b", "a.2", undefined, 0);
    const state = createStageState();
    const { out, calls } = recordingOutput();
    const chain = await chainSpec([a.spec, b.spec], { published: () => false }).create(state, out);
    const data = encodeEnvelope(3, 900, [{ n: 1 }, { n: 2 }, { n: 3 }], 0);
    chain.handle({ seq: 1, subject: "in.2", data, headers: {} }, 0);
    expect(state.map<number>("a/seen").get("all")).toBe(3);
    expect(state.map<number>("b/seen").get("all")).toBe(3);
    expect(state.map<number>("seen").size).toBe(0);
    expect(state.meta["a/progress"]).toBe(900);
    expect(state.meta.progress).toBeUndefined();
    expect(calls.counts).toEqual({ "a/in": 3, "b/in": 3 });
    // A snapshot replaces the meta object: members keep writing into the new one.
    state.meta = { ...state.meta, seq: 1 };
    chain.handle({ seq: 2, subject: "in.2", data: encodeEnvelope(4, 950, [], 3), headers: {} }, 3);
    expect(state.meta["b/progress"]).toBe(950);
    expect(memberCounts("a+b", { "a/late": 2, "b/late:user": 1, in: 5 })).toEqual(
      new Map([
        ["a", { late: 2 }],
        ["b", { "late:user": 1 }],
        ["a+b", { in: 5 }],
      ]),
    );
  });

  it("fails as a whole when a member throws", async () => {
    const a = adder("a", "in.2", "a.2", 1);
    const b = adder("b", "a.2", undefined, 0);
    const failing: StageSpec<StageHandler> = {
      ...b.spec,
      create: () => ({
        handle() {
          throw new Error("b broke");
        },
      }),
    };
    const { out } = recordingOutput();
    const chain = await chainSpec([a.spec, failing], { published: () => false }).create(
      createStageState(),
      out,
    );
    const data = encodeEnvelope(1, 1, [{ n: 1 }], 0);
    // Named after the member that threw: the log and a poison message's Reco-Error say which.
    expect(() => chain.handle({ seq: 1, subject: "in.2", data, headers: {} }, 0)).toThrow(
      "b: Error: b broke",
    );
  });

  it("reports each member's inputs, records and time apart", async () => {
    const a = adder("a", "in.2", "a.2", 1);
    const b = adder("b", "a.2", undefined, 0);
    const { out } = recordingOutput();
    const chain = (await chainSpec([a.spec, b.spec], { published: () => false }).create(
      createStageState(),
      out,
    )) as ChainHandler;
    const hop = (seq: number, n: number) => ({
      seq,
      subject: "in.2",
      data: encodeEnvelope(
        seq,
        1,
        Array.from({ length: n }, (_, k) => ({ n: k })),
        seq - 1,
      ),
      headers: {},
    });
    chain.handle(hop(1, 3), 0);
    chain.handle(hop(2, 2), 1);
    const load = chain.takeMemberLoad();
    expect(load.map((l) => [l.stage, l.inputs, l.records])).toEqual([
      ["a", 2, 0], // the first member's records are the chain's, counted by the host
      ["b", 2, 5],
    ]);
    for (const l of load) {
      expect(l.busyMs).toBeGreaterThan(0);
      expect(l.longestMs).toBeLessThanOrEqual(l.busyMs);
    }
    // Taken: the next call reports what happened since.
    expect(chain.takeMemberLoad().map((l) => l.inputs)).toEqual([0, 0]);
  });
});

describe("a chain's snapshot when the plan changes", () => {
  const chainSnap = (): PlainSnapshot => ({
    meta: {
      seq: 500,
      upTo: 90,
      wm: 7000,
      stats: { "a/in": 3, "b/in": 2, "c/late": 1, poison: 1 },
      sent: { "reco.b.2": 480, "reco.c.2": 495 },
      "a/progress": 7000,
      "c/progress": 6900,
    },
    entries: [
      ["a/seen\u0000all", 3],
      ["b/seen\u0000all", 2],
      ["c/cell\u0000u/1", { n: 1 }],
    ],
  });

  it("cuts a chain into the instances of the new plan, each with its members' state", () => {
    const { head, tail } = cutSnapshot("a+b+c", chainSnap(), 2);
    expect(head[0]).toBe("a+b");
    expect(head[1].meta).toMatchObject({ seq: 500, upTo: 90, wm: 7000, "a/progress": 7000 });
    expect(head[1].meta.stats).toEqual({ "a/in": 3, "b/in": 2, "a/poison": 1 });
    expect(head[1].entries).toEqual([
      ["a/seen\u0000all", 3],
      ["b/seen\u0000all", 2],
    ]);
    // The tail reads b's subject from its start: every hop up to the chain's position is done.
    expect(tail[0]).toBe("c");
    expect(tail[1].meta).toMatchObject({ seq: 0, upTo: 500, wm: 7000, progress: 6900 });
    expect(tail[1].meta.stats).toEqual({ late: 1 });
    expect(tail[1].entries).toEqual([["cell\u0000u/1", { n: 1 }]]);
  });

  it("joins instances into a chain only when each processed exactly what the one before wrote", () => {
    const { head, tail } = cutSnapshot("a+b+c", chainSnap(), 2);
    // Cut and joined again: the same snapshot (the chain-level count now under its first member).
    const [stage, joined] = joinSnapshots([head, tail]);
    expect(stage).toBe("a+b+c");
    expect(joined.entries).toEqual(chainSnap().entries);
    expect(joined.meta).toMatchObject({ seq: 500, upTo: 90, "c/progress": 6900 });
    expect(joinable(head[1], tail[1], "reco.b.2")).toBe(true);
    // The tail behind the head's last hop to it, or ahead of the head's position: not one state.
    const at = (upTo: number): PlainSnapshot => ({ ...tail[1], meta: { ...tail[1].meta, upTo } });
    expect(joinable(head[1], at(479), "reco.b.2")).toBe(false);
    expect(joinable(head[1], at(480), "reco.b.2")).toBe(true);
    expect(joinable(head[1], at(501), "reco.b.2")).toBe(false);
    // An empty tail joins a head that never wrote to it, and only that.
    const empty: PlainSnapshot = { meta: {}, entries: [] };
    expect(isEmptySnapshot(empty)).toBe(true);
    expect(joinable(head[1], empty, "reco.b.2")).toBe(false);
    expect(joinable(head[1], empty, "reco.x.2")).toBe(true);
  });

  it("plans the user path as runs of stages placed together, chained or not", () => {
    const inChild = new Set(["watermark", "window", "interest-ranking"]);
    const place = (s: string) => (inChild.has(s) ? "child" : "main");
    expect(userPathInstances(true, place)).toEqual([
      { stage: "watermark+window+interest-ranking", place: "child" },
      { stage: "popularity-join", place: "main" },
    ]);
    expect(userPathInstances(true, () => "main").map((i) => i.stage)).toEqual([
      "watermark+window+interest-ranking+popularity-join",
    ]);
    expect(userPathInstances(false, place).map((i) => i.stage)).toEqual([...USER_PATH]);
    // popularity-join, what gRPC answers from, starts first at a restart: a chain of its own.
    expect(userPathInstances(true, () => "main", startTierOfStage).map((i) => i.stage)).toEqual([
      "watermark+window+interest-ranking",
      "popularity-join",
    ]);
  });
});

describe("which stages chain", () => {
  const path = () => [
    adder("watermark", "reco.parse.2", "reco.watermark.2", 0).spec,
    adder("window", "reco.watermark.2", "reco.window.2", 0).spec,
    adder("interest-ranking", "reco.window.2", "reco.interest-ranking.2", 0).spec,
    adder("popularity-join", "reco.interest-ranking.2", undefined, 0).spec,
  ];
  const rule = (o: Partial<ChainRule> = {}): ChainRule => ({
    chaining: true,
    placedHere: () => true,
    published: () => false,
    ...o,
  });
  const stages = (specs: StageSpec<StageHandler>[]) => specs.map((s) => s.stage);

  it("chains a whole path on one partitioning in one process", () => {
    expect(stages(planPath(path(), rule()))).toEqual([
      "watermark+window+interest-ranking+popularity-join",
    ]);
  });

  it("chains nothing with CHAINING=off", () => {
    expect(stages(planPath(path(), rule({ chaining: false })))).toEqual([
      "watermark",
      "window",
      "interest-ranking",
      "popularity-join",
    ]);
  });

  it("ends a chain where the next stage starts in another tier (serving loads first)", () => {
    expect(stages(planPath(path(), rule({ tierOf: startTierOfStage })))).toEqual([
      "watermark+window+interest-ranking",
      "popularity-join",
    ]);
  });

  it("ends a chain where the next stage runs in another process", () => {
    const here = rule({ placedHere: (s) => s !== "popularity-join" });
    expect(stages(planPath(path(), here))).toEqual([
      "watermark+window+interest-ranking",
      "popularity-join",
    ]);
  });

  it("ends a chain at another partition or a stage with ticks", () => {
    const [w, win, i, j] = path();
    expect(stages(planPath([w!, { ...win!, partition: 3 }, i!, j!], rule()))).toEqual([
      "watermark",
      "window",
      "interest-ranking+popularity-join",
    ]);
    expect(stages(planPath([w!, win!, { ...i!, tickMs: 100 }, j!], rule()))).toEqual([
      "watermark+window",
      "interest-ranking",
      "popularity-join",
    ]);
  });
});
