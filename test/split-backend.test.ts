import { describe, expect, it } from "vitest";
import { Registry } from "prom-client";
import { createSplitBackend, type AskIngest } from "../bin/pipeline/split-backend.js";
import type { RecoBackend, Recommendations } from "../actors/backend.js";

/**
 * The serving process's blend answers (bin/pipeline/split-backend.ts), pure logic: the ingest
 * process is a function that answers when the test says, the replica a fixed design answer.
 */
const answer = (user: string, tag: string): Recommendations => ({
  userId: user,
  items: [{ itemId: tag } as Recommendations["items"][number]],
  topCategories: [],
  watermark: 1,
  statusMessage: "",
});
const replica: RecoBackend = {
  isReady: () => true,
  recommendNow: (u) => answer(u, "design"),
  getRecommendations: async (u) => answer(u, "design"),
  trending: () => {
    throw new Error("unused");
  },
  similarItems: () => ({ itemId: "", items: [], basis: "category" }) as never,
};

function setup(o: { waitMs?: number; maxAgeMs?: number; maxRefreshes?: number } = {}) {
  let clock = 1_000;
  const pending: { args: unknown[]; resolve: (v: unknown) => void; reject: (e: Error) => void }[] =
    [];
  const ask: AskIngest = (_op, args, timeoutMs) =>
    new Promise((resolve, reject) => {
      const p = { args, resolve, reject };
      pending.push(p);
      setTimeout(() => reject(new Error(`no answer within ${timeoutMs} ms`)), timeoutMs);
    });
  const registry = new Registry();
  const backend = createSplitBackend({
    replica,
    ask,
    forward: true,
    waitMs: o.waitMs ?? 1_000,
    maxInFlight: 8,
    keptAnswers: 2,
    keptMaxAgeMs: o.maxAgeMs ?? 5_000,
    maxRefreshes: o.maxRefreshes ?? 4,
    now: () => clock,
    registry,
  });
  const count = async (from: string) =>
    (await registry.getSingleMetric("reco_serving_answers_total")!.get()).values.find(
      (v) => v.labels.from === from,
    )?.value ?? 0;
  return { backend, pending, tick: (ms: number) => (clock += ms), count };
}
const signal = new AbortController().signal;
const tags = (r: Recommendations | undefined) => r?.items.map((i) => i.itemId);

describe("the split backend's kept blended answers", () => {
  it("waits for the first answer, then serves it at once with its age while one refresh runs", async () => {
    const t = setup();
    // Nothing kept: the synchronous path declines, the request waits for the ingest process.
    expect(t.backend.recommendNow!("u1", 10)).toBeUndefined();
    const first = t.backend.getRecommendations("u1", 10, signal);
    expect(t.pending).toHaveLength(1);
    t.pending[0]!.resolve(answer("u1", "blend-1"));
    expect(tags(await first)).toEqual(["blend-1"]);

    t.tick(300);
    const kept = t.backend.recommendNow!("u1", 10);
    expect(tags(kept)).toEqual(["blend-1"]);
    expect(kept!.stalenessMs).toBe(300);
    expect(t.pending).toHaveLength(2); // one refresh asked for
    t.backend.recommendNow!("u1", 10);
    expect(t.pending).toHaveLength(2); // not a second one while it runs
    t.pending[1]!.resolve(answer("u1", "blend-2"));
    await new Promise((r) => setImmediate(r));
    const refreshed = t.backend.recommendNow!("u1", 10);
    expect(tags(refreshed)).toEqual(["blend-2"]);
    expect(refreshed!.stalenessMs).toBeUndefined();
    // Another n is another answer; options are never kept.
    expect(t.backend.recommendNow!("u1", 5)).toBeUndefined();
    expect(t.backend.recommendNow!("u1", 10, { category: "x" } as never)).toBeUndefined();
    expect(await t.count("kept")).toBe(3);
    expect(await t.count("ingest")).toBe(1);
  });

  it("does not serve an answer older than the limit: the ingest process, or the design ranking", async () => {
    const t = setup({ waitMs: 20, maxAgeMs: 1_000 });
    const first = t.backend.getRecommendations("u1", 10, signal);
    t.pending[0]!.resolve(answer("u1", "blend-1"));
    await first;
    t.tick(1_001);
    expect(t.backend.recommendNow!("u1", 10)).toBeUndefined();
    // The ingest process does not answer within waitMs: the replica's design ranking.
    expect(tags(await t.backend.getRecommendations("u1", 10, signal))).toEqual(["design"]);
    expect(await t.count("replica_fallback")).toBe(1);
    // Its answer, when it comes late, is kept: the next request is served it at once.
    t.pending[1]!.resolve(answer("u1", "blend-late"));
    await new Promise((r) => setImmediate(r));
    expect(tags(t.backend.recommendNow!("u1", 10))).toEqual(["blend-late"]);
    // One question per user and n at a time: a request while one runs waits for that one.
    t.tick(1_001);
    const waiting = t.backend.getRecommendations("u1", 10, signal);
    const also = t.backend.getRecommendations("u1", 10, signal);
    expect(t.pending).toHaveLength(3);
    t.pending[2]!.resolve(answer("u1", "blend-3"));
    expect([tags(await waiting), tags(await also)]).toEqual([["blend-3"], ["blend-3"]]);
  });

  it("drops a user's kept answers when their profile moves (their own events reached the stages)", async () => {
    const t = setup();
    const first = t.backend.getRecommendations("u1", 10, signal);
    t.pending[0]!.resolve(answer("u1", "blend-1"));
    await first;
    const other = t.backend.getRecommendations("u2", 10, signal);
    t.pending[1]!.resolve(answer("u2", "blend-2"));
    await other;
    t.backend.userChanged("u1");
    expect(t.backend.recommendNow!("u1", 10)).toBeUndefined();
    expect(tags(t.backend.recommendNow!("u2", 10))).toEqual(["blend-2"]);
  });

  it("bounds the refreshes in flight and the answers kept", async () => {
    const t = setup({ maxRefreshes: 1 });
    for (const u of ["a", "b", "c"]) {
      const r = t.backend.getRecommendations(u, 10, signal);
      t.pending.at(-1)!.resolve(answer(u, `blend-${u}`));
      await r;
    }
    // Two kept at most: "a", the oldest, is gone.
    expect(t.backend.recommendNow!("a", 10)).toBeUndefined();
    const before = t.pending.length;
    expect(tags(t.backend.recommendNow!("b", 10))).toEqual(["blend-b"]);
    expect(tags(t.backend.recommendNow!("c", 10))).toEqual(["blend-c"]);
    expect(t.pending.length - before).toBe(1); // c's refresh waits for b's
  });
});
