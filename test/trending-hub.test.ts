import { describe, it, expect } from "vitest";
import { createTrendingHub, type TrendingHubOptions } from "../actors/serving/index.js";
import type { TrendingKind, TrendingPart } from "../actors/stages/index.js";
import type { TrendingSnapshot } from "../connectors/grpc/backend.js";
import { DAY, HOUR } from "../actors/contract/index.js";

const T0 = Date.UTC(2024, 0, 1, 0, 0, 0);
const ONE_H_OOO = 2 * HOUR;
const ONE_D_OOO = 26 * HOUR;
const TRIGGER = 5000;

function part(
  kind: TrendingKind,
  start: number,
  items: TrendingPart["items"],
  final = false,
): TrendingPart {
  return { kind, start, end: start + (kind === "1h" ? HOUR : DAY), items, final, wm: start };
}

function setup(opts: Partial<TrendingHubOptions> = {}) {
  let now = 1_000_000;
  const hub = createTrendingHub({
    partitions: 2,
    triggerMs: TRIGGER,
    oneHourOutOfOrdernessMs: ONE_H_OOO,
    oneDayOutOfOrdernessMs: ONE_D_OOO,
    clock: () => now,
    ...opts,
  });
  const seen: Record<TrendingKind, TrendingSnapshot[]> = { "1h": [], "24h": [] };
  hub.updates("1h").subscribe((s) => seen["1h"].push(s));
  hub.updates("24h").subscribe((s) => seen["24h"].push(s));
  return {
    hub,
    seen,
    advance: (ms: number) => void (now += ms),
    heartbeat: (q: number, wm: number) => hub.apply(`wm.${q}`, { q, wm }),
  };
}

describe("trending hub", () => {
  it("should repeat a 24 h final for at most the 23 windows after it when no partition sends the change", () => {
    const { hub, seen, heartbeat } = setup({ partitions: 1 });
    const s = T0 - DAY + HOUR;
    // As in a bucket written before partitions sent only changes: no emptied window follows.
    hub.apply(`24h.${s}.0`, part("24h", s, [["a", 4, 4, 0]], true));
    heartbeat(0, s + 1000 * DAY);
    hub.evaluate();
    const finals = seen["24h"].filter((x) => x.final).map((x) => (x.windowStart - s) / HOUR);
    expect(finals).toEqual(Array.from({ length: 24 }, (_, k) => k));
  });

  it("should merge into a 24 h final the list a partition left unchanged since its last final, and send a final for every closed window", () => {
    const { hub, seen, heartbeat } = setup();
    const s = T0 - DAY + HOUR;
    // Partition 0 publishes the window starting at s, partition 1 that one and the next; at
    // s + 2 h partition 0 has lost its data (an empty final).
    hub.apply(`24h.${s}.0`, part("24h", s, [["a", 4, 4, 0]], true));
    hub.apply(`24h.${s}.1`, part("24h", s, [["b", 2, 2, 0]], true));
    hub.apply(`24h.${s + HOUR}.1`, part("24h", s + HOUR, [["b", 5, 5, 0]], true));
    hub.apply(`24h.${s + 2 * HOUR}.0`, part("24h", s + 2 * HOUR, [], true));
    // A non-final list of partition 0 for s + HOUR, put before its close: not its final.
    hub.apply(`24h.${s + HOUR}.0`, part("24h", s + HOUR, [["z", 9, 9, 0]]));
    heartbeat(0, s + 2 * HOUR + DAY + ONE_D_OOO);
    heartbeat(1, s + 2 * HOUR + DAY + ONE_D_OOO);
    hub.evaluate();
    // Two more hours closed that no partition sent: each a final, with the list before them.
    heartbeat(0, s + 4 * HOUR + DAY + ONE_D_OOO);
    heartbeat(1, s + 4 * HOUR + DAY + ONE_D_OOO);
    hub.evaluate();
    const finals = seen["24h"]
      .filter((x) => x.final)
      .map((x) => [x.windowStart - s, x.items.map((i) => `${i.itemId}:${i.score}`)]);
    expect(finals).toEqual([
      [0, ["a:4", "b:2"]],
      [HOUR, ["b:5", "a:4"]],
      [2 * HOUR, ["b:5"]],
      [3 * HOUR, ["b:5"]],
      [4 * HOUR, ["b:5"]],
    ]);
  });

  it("should merge the partitions' lists into one top list by score, ties by item id", () => {
    const { hub, seen } = setup();
    hub.apply(
      `1h.${T0}.0`,
      part("1h", T0, [
        ["a", 5, 3, 1],
        ["c", 2, 2, 0],
      ]),
    );
    hub.apply(
      `1h.${T0}.1`,
      part("1h", T0, [
        ["d", 7, 7, 0],
        ["b", 5, 1, 2],
      ]),
    );
    hub.evaluate();
    expect(seen["1h"]).toEqual([
      {
        window: "1h",
        windowStart: T0,
        windowEnd: T0 + HOUR,
        items: [
          { itemId: "d", score: 7, views: 7, clicks: 0 },
          { itemId: "a", score: 5, views: 3, clicks: 1 },
          { itemId: "b", score: 5, views: 1, clicks: 2 },
          { itemId: "c", score: 2, views: 2, clicks: 0 },
        ],
        final: false,
        // Not every partition has sent a heartbeat: no watermark yet.
        watermark: null,
      },
    ]);
    expect(seen["24h"]).toEqual([]);
  });

  it("should replace a partition's list with its newer version (upsert by key)", () => {
    const { hub, seen, advance } = setup();
    hub.apply(`1h.${T0}.0`, part("1h", T0, [["a", 1, 1, 0]]));
    hub.evaluate();
    hub.apply(`1h.${T0}.0`, part("1h", T0, [["a", 3, 3, 0]]));
    advance(TRIGGER);
    hub.evaluate();
    expect(seen["1h"].at(-1)!.items).toEqual([{ itemId: "a", score: 3, views: 3, clicks: 0 }]);
  });

  it("should emit only the newest window as a non-final update", () => {
    const { hub, seen } = setup();
    hub.apply(`1h.${T0}.0`, part("1h", T0, [["old", 9, 9, 0]]));
    hub.apply(`1h.${T0 + HOUR}.1`, part("1h", T0 + HOUR, [["new", 1, 1, 0]]));
    hub.evaluate();
    expect(seen["1h"].map((s) => [s.windowStart, s.final])).toEqual([[T0 + HOUR, false]]);
  });

  describe("finality", () => {
    it("should hold the final back while a partition has no heartbeat", () => {
      const { hub, seen, heartbeat } = setup();
      hub.apply(`1h.${T0}.0`, part("1h", T0, [["a", 1, 1, 0]], true));
      heartbeat(0, T0 + 10 * DAY);
      hub.evaluate();
      expect(seen["1h"].filter((s) => s.final)).toEqual([]);
    });

    it("should emit the final once the minimum heartbeat over all partitions reaches end + ooo", () => {
      const { hub, seen, heartbeat } = setup();
      hub.apply(`1h.${T0}.0`, part("1h", T0, [["a", 3, 3, 0]], true));
      hub.apply(`1h.${T0}.1`, part("1h", T0, [["b", 4, 4, 0]], true));
      // End T0 + 1h, out-of-orderness 2 h: final when min(heartbeats) >= T0 + 3h.
      heartbeat(0, T0 + 5 * HOUR);
      heartbeat(1, T0 + 3 * HOUR - 1);
      hub.evaluate();
      expect(seen["1h"].filter((s) => s.final)).toEqual([]);

      heartbeat(1, T0 + 3 * HOUR);
      hub.evaluate();
      const finals = seen["1h"].filter((s) => s.final);
      expect(finals).toEqual([
        {
          window: "1h",
          windowStart: T0,
          windowEnd: T0 + HOUR,
          items: [
            { itemId: "b", score: 4, views: 4, clicks: 0 },
            { itemId: "a", score: 3, views: 3, clicks: 0 },
          ],
          final: true,
          // The merged watermark is min(heartbeats) − out-of-orderness: exactly the window end.
          watermark: T0 + HOUR,
        },
      ]);

      heartbeat(0, T0 + 9 * HOUR);
      heartbeat(1, T0 + 9 * HOUR);
      hub.evaluate();
      expect(seen["1h"].filter((s) => s.final)).toHaveLength(1);
    });

    it("should use the 24 h out-of-orderness for 24 h windows", () => {
      const { hub, seen, heartbeat } = setup();
      hub.apply(`24h.${T0}.0`, part("24h", T0, [["a", 1, 1, 0]], true));
      // End T0 + 24h, out-of-orderness 26 h: final at T0 + 50h.
      heartbeat(0, T0 + 50 * HOUR - 1);
      heartbeat(1, T0 + 50 * HOUR - 1);
      hub.evaluate();
      expect(seen["24h"].filter((s) => s.final)).toEqual([]);
      heartbeat(0, T0 + 50 * HOUR);
      heartbeat(1, T0 + 50 * HOUR);
      hub.evaluate();
      expect(seen["24h"].filter((s) => s.final).map((s) => [s.windowStart, s.windowEnd])).toEqual([
        [T0, T0 + DAY],
      ]);
    });

    it("should finalise several windows in start order", () => {
      const { hub, seen, heartbeat } = setup();
      hub.apply(`1h.${T0 + HOUR}.0`, part("1h", T0 + HOUR, [["b", 1, 1, 0]]));
      hub.apply(`1h.${T0}.1`, part("1h", T0, [["a", 1, 1, 0]]));
      heartbeat(0, T0 + 10 * HOUR);
      heartbeat(1, T0 + 10 * HOUR);
      hub.evaluate();
      expect(seen["1h"].filter((s) => s.final).map((s) => s.windowStart)).toEqual([T0, T0 + HOUR]);
    });
  });

  describe("trigger", () => {
    it("should throttle non-final updates to one per triggerMs of the injected clock", () => {
      const { hub, seen, advance } = setup();
      hub.apply(`1h.${T0}.0`, part("1h", T0, [["a", 1, 1, 0]]));
      hub.evaluate();
      expect(seen["1h"]).toHaveLength(1);

      hub.apply(`1h.${T0}.0`, part("1h", T0, [["a", 2, 2, 0]]));
      advance(TRIGGER - 1);
      hub.evaluate();
      expect(seen["1h"]).toHaveLength(1);

      advance(1);
      hub.evaluate();
      expect(seen["1h"]).toHaveLength(2);
      expect(seen["1h"][1]!.items[0]!.score).toBe(2);
    });

    it("should not emit when nothing changed, however much time passed", () => {
      const { hub, seen, advance } = setup();
      hub.apply(`1h.${T0}.0`, part("1h", T0, [["a", 1, 1, 0]]));
      hub.evaluate();
      advance(10 * TRIGGER);
      hub.evaluate();
      hub.apply(`wm.0`, { q: 0, wm: T0 });
      advance(10 * TRIGGER);
      hub.evaluate();
      expect(seen["1h"]).toHaveLength(1);
    });

    it("should throttle each window kind on its own", () => {
      const { hub, seen } = setup();
      hub.apply(`1h.${T0}.0`, part("1h", T0, [["a", 1, 1, 0]]));
      hub.evaluate();
      hub.apply(`24h.${T0}.0`, part("24h", T0, [["a", 1, 1, 0]]));
      hub.evaluate();
      expect(seen["1h"]).toHaveLength(1);
      expect(seen["24h"]).toHaveLength(1);
    });
  });

  describe("updates", () => {
    it("should replay the latest snapshot to a late subscriber, then every update", () => {
      const { hub, advance } = setup();
      hub.apply(`1h.${T0}.0`, part("1h", T0, [["a", 1, 1, 0]]));
      hub.evaluate();
      advance(TRIGGER);
      hub.apply(`1h.${T0}.0`, part("1h", T0, [["a", 2, 2, 0]]));
      hub.evaluate();

      const late: TrendingSnapshot[] = [];
      const sub = hub.updates("1h").subscribe((s) => late.push(s));
      expect(late.map((s) => s.items[0]!.score)).toEqual([2]);
      expect(hub.latest("1h")).toEqual(late[0]);

      advance(TRIGGER);
      hub.apply(`1h.${T0}.0`, part("1h", T0, [["a", 3, 3, 0]]));
      hub.evaluate();
      expect(late.map((s) => s.items[0]!.score)).toEqual([2, 3]);
      sub.unsubscribe();
    });

    it("should give nothing to a subscriber before the first snapshot", () => {
      const { hub } = setup();
      const got: TrendingSnapshot[] = [];
      hub.updates("24h").subscribe((s) => got.push(s));
      expect(got).toEqual([]);
      expect(hub.latest("24h")).toBeUndefined();
    });
  });

  it("should cap the merged list at 100 entries", () => {
    const { hub, seen } = setup();
    const items = (q: number): TrendingPart["items"] =>
      Array.from({ length: 60 }, (_, k) => [`q${q}-${String(k).padStart(2, "0")}`, 100 - k, 0, 0]);
    hub.apply(`1h.${T0}.0`, part("1h", T0, items(0)));
    hub.apply(`1h.${T0}.1`, part("1h", T0, items(1)));
    hub.evaluate();
    const merged = seen["1h"][0]!.items;
    expect(merged).toHaveLength(100);
    // 120 entries, two per score: the 100 best are scores 100 … 51, q0 before q1 on each tie.
    expect(merged[0]!.itemId).toBe("q0-00");
    expect(merged[1]!.itemId).toBe("q1-00");
    expect(merged[99]!.score).toBe(51);
  });
});
