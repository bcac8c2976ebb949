import { describe, it, expect } from "vitest";
import { createStageState } from "../state/store.js";
import type { Envelope, InputMessage } from "../actors/host/index.js";
import type { EventType } from "../actors/contract/index.js";
import type { WindowOutput, WindowRecord } from "../actors/stages/index.js";
import type { ProfileRecord } from "../actors/stages/index.js";
import { createInterestHandler } from "../actors/plan/index.js";
import { DAY, MINUTE } from "../actors/contract/index.js";
import { fakeOutput } from "./helpers/stage.js";

const enc = new TextEncoder();
const T0 = Date.UTC(2024, 0, 1, 10, 0, 0);
const W = 5 * MINUTE;

function cell(
  w: number,
  u: string,
  i: string,
  c: string,
  n: number,
  t: EventType = "view",
): WindowRecord {
  return { w, u, i, t, n, c, b: "", pr: -1 };
}

function setup() {
  const { out, rec } = fakeOutput();
  const h = createInterestHandler(createStageState(), out, {
    partition: 1,
    horizonMs: DAY,
    windowMs: W,
    topCategories: 3,
  });
  let n = 0;
  const feed = (wm: number, recs: WindowOutput[]): ProfileRecord[] => {
    const before = rec.emits.length;
    n++;
    const env: Envelope<WindowOutput> = { upTo: n, wm, recs };
    const msg: InputMessage = {
      seq: n,
      subject: "reco.window.1",
      data: enc.encode(JSON.stringify(env)),
      headers: {},
    };
    h.handle(msg, n - 1);
    return rec.emits.slice(before).map(([s, r]) => {
      expect(s).toBe("reco.interest-ranking.1");
      return r as ProfileRecord;
    });
  };
  return { h, rec, feed };
}

describe("interest-ranking", () => {
  it("should keep the top 3 categories by interest, ties by category name", () => {
    const { h, feed } = setup();
    const out = feed(T0, [
      cell(T0, "u1", "e1", "electronics", 3),
      cell(T0, "u1", "e2", "electronics", 2, "click"),
      cell(T0, "u1", "t1", "toys", 4),
      cell(T0, "u1", "g1", "garden", 4),
      cell(T0, "u1", "b1", "books", 4),
      cell(T0, "u1", "a1", "apparel", 1),
    ]);
    // electronics 3 + 2 = 5; books, garden, toys 4 each (alphabetical); apparel 1.
    const expected: [string, number][] = [
      ["electronics", 5],
      ["books", 4],
      ["garden", 4],
    ];
    expect(out).toHaveLength(1);
    expect(out[0]!.top).toEqual(expected);
    expect(h.profile("u1")?.top).toEqual(expected);
  });

  it("should sum interest over windows, items and event types of a category", () => {
    const { feed } = setup();
    const out = feed(T0 + 2 * W, [
      cell(T0, "u1", "e1", "electronics", 1, "view"),
      cell(T0, "u1", "e1", "electronics", 2, "click"),
      cell(T0 + W, "u1", "e1", "electronics", 3, "cart"),
      cell(T0 + 2 * W, "u1", "e2", "electronics", 4, "purchase"),
    ]);
    expect(out.at(-1)!.top).toEqual([["electronics", 1 + 2 + 3 + 4]]);
  });

  it("should not count interactions without a category", () => {
    const { feed } = setup();
    const out = feed(T0, [cell(T0, "u1", "x", "", 7), cell(T0, "u1", "b", "books", 1)]);
    expect(out[0]!.top).toEqual([["books", 1]]);
  });

  it("should treat window results as upserts: a higher n for the same key replaces it", () => {
    const { h, feed } = setup();
    feed(T0, [cell(T0, "u1", "b1", "books", 2)]);
    const out = feed(T0, [cell(T0, "u1", "b1", "books", 3)]);
    // 3, not 2 + 3 = 5.
    expect(out[0]!.top).toEqual([["books", 3]]);
    expect(h.profile("u1")?.top).toEqual([["books", 3]]);
  });

  it("should not re-emit a profile that did not change", () => {
    const { feed } = setup();
    feed(T0, [cell(T0, "u1", "b1", "books", 2)]);
    expect(feed(T0 + MINUTE, [cell(T0, "u1", "b1", "books", 2)])).toEqual([]);
  });

  it("should ignore close markers (counts are upserts)", () => {
    const { feed } = setup();
    feed(T0, [cell(T0, "u1", "b1", "books", 2)]);
    expect(feed(T0 + 15 * MINUTE, [{ close: T0 }])).toEqual([]);
  });

  it("should count windows whose end > progress − 24 h and re-emit the profile as they leave", () => {
    const { h, feed } = setup();
    feed(T0 + W, [cell(T0, "u1", "b1", "books", 2), cell(T0 + W, "u1", "e1", "electronics", 1)]);
    // Window T0 ends at T0 + 5m: still inside while progress − 24 h < T0 + 5m.
    expect(feed(T0 + W + DAY - 1, [])).toEqual([]);
    expect(h.profile("u1")?.top).toEqual([
      ["books", 2],
      ["electronics", 1],
    ]);
    // progress − 24 h = T0 + 5m: the window T0 leaves; the profile changes and is re-emitted.
    const out = feed(T0 + W + DAY, []);
    expect(out).toEqual([
      { u: "u1", top: [["electronics", 1]], pur: [], wm: T0 + W + DAY },
    ] satisfies ProfileRecord[]);
  });

  it("should emit an empty profile when the user's last window leaves the horizon", () => {
    const { h, feed } = setup();
    feed(T0, [cell(T0, "u1", "b1", "books", 2)]);
    const out = feed(T0 + W + DAY, []);
    expect(out).toEqual([{ u: "u1", top: [], pur: [], wm: T0 + W + DAY }]);
    expect(h.profile("u1")).toBeUndefined();
  });

  it("should list purchased items with the end of the window of the latest purchase", () => {
    const { feed } = setup();
    const out = feed(T0 + 3 * W, [
      cell(T0, "u1", "p2", "books", 1, "purchase"),
      cell(T0 + 2 * W, "u1", "p2", "books", 1, "purchase"),
      cell(T0 + W, "u1", "p1", "books", 1, "purchase"),
      cell(T0, "u1", "p3", "books", 5, "view"),
    ]);
    expect(out.at(-1)!.pur).toEqual([
      ["p1", T0 + W + W],
      ["p2", T0 + 2 * W + W],
    ]);
  });

  it("should keep users apart", () => {
    const { h, feed } = setup();
    const out = feed(T0, [cell(T0, "u1", "b1", "books", 1), cell(T0, "u2", "t1", "toys", 1)]);
    expect(out.map((p) => p.u).sort()).toEqual(["u1", "u2"]);
    expect(h.profile("u1")?.top).toEqual([["books", 1]]);
    expect(h.profile("u2")?.top).toEqual([["toys", 1]]);
  });

  it("should stamp the profile with the progress it reflects and pass progress on", () => {
    const { rec, feed } = setup();
    const out = feed(T0 + 7, [cell(T0, "u1", "b1", "books", 1)]);
    expect(out[0]!.wm).toBe(T0 + 7);
    expect(rec.progress).toEqual([T0 + 7]);
    expect(rec.touches).toEqual(["reco.interest-ranking.1"]);
  });
});
