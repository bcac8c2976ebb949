import { describe, expect, it } from "vitest";
import { Subject } from "rxjs";
import type { RecoBackend, TrendingSnapshot } from "../actors/contract/index.js";
import { createTrendingHistory } from "../connectors/http/api-trending.js";

const H = 3_600_000;
const final = (start: number, item: string): TrendingSnapshot => ({
  window: "1h",
  windowStart: start * H,
  windowEnd: (start + 1) * H,
  items: [{ itemId: item, score: 1, views: 1, clicks: 0 }],
  final: true,
  watermark: 0,
});

describe("the API's trending history", () => {
  it("keeps the newest finals first, one per window, at most `keep`, whatever order they come in", () => {
    const hub = new Subject<TrendingSnapshot>();
    const backend = { trending: () => hub } as unknown as RecoBackend;
    const history = createTrendingHistory(backend, 3);
    const starts = () => history.finals("1h").map((f) => f.windowStart / H);
    hub.next(final(1, "a"));
    hub.next(final(3, "b"));
    hub.next(final(2, "c"));
    expect(starts()).toEqual([3, 2, 1]);
    hub.next(final(2, "d")); // the same window again: replaced, not added
    expect(starts()).toEqual([3, 2, 1]);
    expect(history.finalAt("1h", 2.5 * H)?.items[0]?.itemId).toBe("d");
    hub.next(final(0, "e")); // older than all kept, with the list full: not kept
    expect(starts()).toEqual([3, 2, 1]);
    hub.next(final(4, "f"));
    expect(starts()).toEqual([4, 3, 2]);
    expect(history.finalAt("1h", 1.5 * H)).toBeUndefined();
    expect(history.latest("1h")?.windowStart).toBe(4 * H);
    history.stop();
  });
});
