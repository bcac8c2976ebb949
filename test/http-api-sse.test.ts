import { EventEmitter } from "node:events";
import type { IncomingMessage, ServerResponse } from "node:http";
import { describe, expect, it } from "vitest";
import { Subject } from "rxjs";
import type { RecoBackend, TrendingSnapshot } from "../actors/contract/index.js";
import { streamTrending } from "../connectors/http/api-trending.js";
import { similarByCategory } from "../actors/serving/index.js";
import { createPopularityTable } from "../actors/stages/index.js";

/** A response whose socket is full until `drain()`: what a browser that stopped reading does. */
function blockedResponse() {
  const res = new EventEmitter() as EventEmitter & {
    frames: string[];
    full: boolean;
    ended: boolean;
  };
  res.frames = [];
  res.full = false;
  res.ended = false;
  Object.assign(res, {
    writeHead: () => res,
    write(text: string) {
      res.frames.push(text);
      return !res.full;
    },
    end() {
      res.ended = true;
    },
  });
  return res;
}

const snap = (start: number, score: number, final = false): TrendingSnapshot => ({
  window: "1h",
  windowStart: start,
  windowEnd: start + 3_600_000,
  items: [{ itemId: "a", score, views: score, clicks: 0 }],
  final,
  watermark: start,
});

const scores = (frames: string[]) =>
  frames
    .filter((f) => f.startsWith("event: trending"))
    .map((f) => {
      const d = JSON.parse(f.split("data: ")[1]!) as {
        final: boolean;
        items: { score: number }[];
      };
      return `${d.items[0]!.score}${d.final ? " final" : ""}`;
    });

describe("trending event stream to a slow browser", () => {
  it("holds only the newest update and the finals while the socket is full, then flushes", () => {
    const updates = new Subject<TrendingSnapshot>();
    const backend = { trending: () => updates } as unknown as RecoBackend;
    const req = new EventEmitter() as IncomingMessage;
    const res = blockedResponse();
    let closed = false;
    const close = streamTrending(
      req,
      res as unknown as ServerResponse,
      backend,
      "1h",
      10,
      { heartbeatMs: 60_000, maxPendingFinals: 2 },
      () => (closed = true),
    );
    updates.next(snap(0, 1));
    res.full = true;
    updates.next(snap(0, 2)); // written, reports the socket full
    for (let s = 3; s <= 50; s++) updates.next(snap(0, s)); // superseded while blocked
    updates.next(snap(0, 60, true)); // the window's final: kept
    updates.next(snap(3_600_000, 7)); // the next window's newest
    updates.next(snap(3_600_000, 8));
    expect(scores(res.frames)).toEqual(["1", "2"]);
    res.full = false;
    res.emit("drain");
    expect(scores(res.frames)).toEqual(["1", "2", "60 final", "8"]);
    // At most `maxPendingFinals` finals wait; the oldest goes first.
    res.full = true;
    updates.next(snap(7_200_000, 1));
    for (const start of [1, 2, 3]) updates.next(snap(start * 10_000_000, start, true));
    res.full = false;
    res.emit("drain");
    expect(scores(res.frames).slice(5)).toEqual(["2 final", "3 final"]);
    req.emit("close");
    expect(closed).toBe(true);
    expect(res.ended).toBe(true);
    expect(updates.observed).toBe(false);
    close();
  });
});

describe("similar items until co-visitation serves them", () => {
  const table = createPopularityTable();
  const row = (item: string, purchases: number, category: string) =>
    table.apply({ item, purchases, category, brand: "b", avgPrice: 10, wm: 1000 });
  row("phone-a", 5, "electronics");
  row("phone-b", 9, "electronics");
  row("phone-c", 9, "electronics");
  row("book-a", 20, "books");

  it("answers the most purchased of the item's category, without the item, and says so", () => {
    const s = similarByCategory("phone-a", 10, table, table.row);
    expect(s.basis).toBe("SAME_CATEGORY_POPULAR");
    expect(s.items.map((i) => [i.rank, i.itemId])).toEqual([
      [1, "phone-b"],
      [2, "phone-c"],
    ]);
    expect(s.items[0]!.explanation).toBe("also popular in electronics: bought 9 times in 7 days");
    expect(s.statusMessage).toMatch(/co-visitation is not served yet/);
  });

  it("falls back to the overall top for an item without purchases, marked as such", () => {
    const s = similarByCategory("never-bought", 2, table, table.row);
    expect(s.basis).toBe("POPULAR_FALLBACK");
    expect(s.items.map((i) => i.itemId)).toEqual(["book-a", "phone-b"]);
  });
});
