import { describe, expect, it } from "vitest";
import { createBlendAnswers } from "../actors/serving/index.js";
import type { RecommenderView } from "../actors/serving/index.js";
import {
  defaultBlend,
  defaultSourceSettings,
  ECOMMERCE,
  createRecommender,
} from "../actors/sources/index.js";
import type { SourceEvent } from "../actors/sources/index.js";

/**
 * ANSWER_MAX_AGE_MS (actors/serving/blend-answers.ts): bounded staleness is opt-in, reported, and bounded;
 * without it every change of the data gives a fresh answer.
 */
const T0 = Date.UTC(2026, 10, 1);

function sources(maxAgeMs: number | undefined, staleness?: () => number, withUserVersion = false) {
  const rec = createRecommender(ECOMMERCE, defaultSourceSettings(ECOMMERCE));
  const touched = new Map<string, Set<string>>();
  let progress = -1;
  let changes = 0;
  let clock = 1_000_000;
  /** Per user, how many of their own events were added (the stages' user version). */
  const own = new Map<string, number>();
  const add = (u: string, i: string, ts: number) => {
    const e: SourceEvent = { u, i, t: "purchase", ts, c: "c", r: -1 };
    rec.add(e);
    touched.set(u, (touched.get(u) ?? new Set()).add(i));
    progress = Math.max(progress, ts);
    changes++;
    own.set(u, (own.get(u) ?? 0) + 1);
  };
  const view: RecommenderView = {
    recommender: () => rec,
    progress: () => progress,
    touched: (u) => touched.get(u),
    categoryOf: () => "c",
  };
  const answers = createBlendAnswers({
    blend: defaultBlend(ECOMMERCE),
    view: () => view,
    collaborative: () => undefined,
    changes: () => changes,
    now: () => clock,
    ...(maxAgeMs !== undefined ? { maxAgeMs } : {}),
    ...(staleness ? { staleness } : {}),
    ...(withUserVersion ? { userVersion: (u: string) => own.get(u) ?? 0 } : {}),
  });
  const ask = (u: string) => answers.answer(u, 5, undefined, () => undefined, undefined, 0)!;
  return { add, ask, answers, tick: (ms: number) => void (clock += ms) };
}

/** Item ids of an answer, best first. */
const ids = (r: { items: { itemId: string }[] }) => r.items.map((i) => i.itemId);

describe("blended answers with ANSWER_MAX_AGE_MS", () => {
  /** Others buy p1 and p2 together; u1 buys p1, then p3 (a new co-visitation). */
  const scenario = (s: ReturnType<typeof sources>) => {
    for (let x = 0; x < 5; x++) {
      s.add(`o${x}`, "p1", T0 + x * 1000);
      s.add(`o${x}`, "p2", T0 + x * 1000 + 500);
    }
    s.add("u1", "p1", T0 + 10_000);
    const first = s.ask("u1");
    for (let x = 0; x < 5; x++) {
      s.add(`q${x}`, "p1", T0 + 20_000 + x * 1000);
      s.add(`q${x}`, "p9", T0 + 20_000 + x * 1000 + 500);
    }
    return first;
  };

  it("serves an answer again within the age, its staleness reported, and a fresh one after", () => {
    const s = sources(1_000, () => 40);
    const first = scenario(s);
    expect(first.stalenessMs).toBeUndefined();
    s.tick(600);
    const again = s.ask("u1");
    expect(ids(again)).toEqual(ids(first));
    // Its age and its view's lag when it was computed.
    expect(again.stalenessMs).toBe(640);
    expect(s.answers.memo).toMatchObject({ hits: 1, misses: 1, aged: 1 });
    s.tick(401);
    const fresh = s.ask("u1");
    expect(fresh.stalenessMs).toBeUndefined();
    expect(ids(fresh)).toContain("p9");
    expect(ids(first)).not.toContain("p9");
  });

  it("serves an unchanged answer as exact however old, and ages it from when it last was", () => {
    const s = sources(1_000);
    s.add("u1", "p1", T0);
    s.add("o1", "p1", T0 + 1000);
    s.add("o1", "p2", T0 + 2000);
    const first = s.ask("u1");
    s.tick(5_000);
    // Nothing changed: the memo's answer, exact (no staleness), not counted as aged.
    expect(s.ask("u1")).toBe(first);
    expect(s.answers.memo).toMatchObject({ hits: 1, misses: 1, aged: 0 });
    s.add("o2", "p3", T0 + 3000);
    s.tick(300);
    // Changed since: served again, 300 ms old (from the exact hit, not from its computation).
    expect(s.ask("u1").stalenessMs).toBe(300);
    expect(s.answers.memo).toMatchObject({ hits: 2, misses: 1, aged: 1 });
  });

  it("never serves a user an aged answer older than their own latest event", () => {
    const s = sources(1_000, undefined, true);
    scenario(s);
    s.tick(100);
    // Others' events since: served again, aged.
    expect(s.ask("u1").stalenessMs).toBe(100);
    s.add("u1", "p2", T0 + 30_000);
    s.tick(100);
    // The user's own event since: a fresh answer, whatever its age.
    const fresh = s.ask("u1");
    expect(fresh.stalenessMs).toBeUndefined();
    expect(s.answers.memo).toMatchObject({ hits: 1, misses: 2, aged: 1 });
  });

  it("is exact by default: a change of the data gives a fresh answer at once", () => {
    const s = sources(undefined);
    const first = scenario(s);
    const next = s.ask("u1");
    expect(ids(next)).toContain("p9");
    expect(ids(first)).not.toContain("p9");
    expect(next.stalenessMs).toBeUndefined();
    expect(s.answers.memo.aged).toBe(0);
  });
});
