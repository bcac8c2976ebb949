import type { IncomingMessage, ServerResponse } from "node:http";
import type { Subscription } from "rxjs";
import {
  TRENDING_WINDOWS,
  type RecoBackend,
  type TrendingSnapshot,
  type TrendingWindowName,
} from "../../actors/contract/index.js";
import { trendingJson } from "./api-views.js";

/**
 * What the API knows of trending beyond "the newest window": the finals of past windows, kept
 * from the backend's stream since this process started (the hub itself keeps only the newest),
 * at most `keep` per window kind.
 */
export interface TrendingHistory {
  latest(window: TrendingWindowName): TrendingSnapshot | undefined;
  /** The final of the window that contains `at` (epoch ms), if this process saw it. */
  finalAt(window: TrendingWindowName, at: number): TrendingSnapshot | undefined;
  /** Starts and ends of the finals kept, newest first. */
  finals(window: TrendingWindowName): readonly TrendingSnapshot[];
  stop(): void;
}

export function createTrendingHistory(backend: RecoBackend, keep = 48): TrendingHistory {
  const latest = new Map<TrendingWindowName, TrendingSnapshot>();
  const finals = new Map<TrendingWindowName, TrendingSnapshot[]>(
    TRENDING_WINDOWS.map((w) => [w, []]),
  );
  const subs: Subscription[] = TRENDING_WINDOWS.map((w) =>
    backend.trending(w).subscribe((s) => {
      const newest = latest.get(w);
      if (!newest || s.windowStart >= newest.windowStart) latest.set(w, s);
      if (!s.final) return;
      // Newest first, one per window start; in place (a catch-up sends a final per hour).
      const list = finals.get(w)!;
      const at = list.findIndex((f) => f.windowStart <= s.windowStart);
      if (at < 0) list.push(s);
      else if (list[at]!.windowStart === s.windowStart) list[at] = s;
      else list.splice(at, 0, s);
      if (list.length > keep) list.length = keep;
    }),
  );
  return {
    latest: (w) => latest.get(w),
    // 24 h windows slide by 1 h, so several contain `at`: the one that starts last, as the
    // newest 24 h window is the one that starts last.
    finalAt: (w, at) => finals.get(w)!.find((f) => f.windowStart <= at && at < f.windowEnd),
    finals: (w) => finals.get(w)!,
    stop: () => subs.forEach((s) => s.unsubscribe()),
  };
}

export interface SseOptions {
  /** A comment line this often keeps proxies and idle-timeouts from closing the stream. */
  heartbeatMs: number;
  /** Finals a blocked client may hold besides the newest update (then the oldest goes). */
  maxPendingFinals?: number;
}

/**
 * Streams trending snapshots as server-sent events (`event: trending`, JSON data) without ever
 * queueing without bound: while the socket takes writes they go straight out; once `write()`
 * reports backpressure, only the newest non-final snapshot is held (latest-wins) plus a few
 * finals, flushed on `drain`. A slow browser thus never slows the pipeline or other clients.
 * Returns a function that ends the stream.
 */
export function streamTrending(
  req: IncomingMessage,
  res: ServerResponse,
  backend: RecoBackend,
  window: TrendingWindowName,
  k: number,
  opts: SseOptions,
  onClose: () => void,
): () => void {
  const maxFinals = opts.maxPendingFinals ?? 8;
  res.writeHead(200, {
    "content-type": "text/event-stream; charset=utf-8",
    "cache-control": "no-store",
    connection: "keep-alive",
    // nginx and friends buffer responses unless told not to.
    "x-accel-buffering": "no",
  });
  res.write(`retry: 2000\n: trending ${window}, top ${k}\n\n`);
  let pending: TrendingSnapshot[] = [];
  let blocked = false;
  let seq = 0;
  let closed = false;

  const frame = (s: TrendingSnapshot) =>
    `event: trending\nid: ${++seq}\ndata: ${JSON.stringify(trendingJson(s, k))}\n\n`;
  const write = (text: string): void => {
    if (!res.write(text)) {
      blocked = true;
      res.once("drain", flush);
    }
  };
  function flush(): void {
    blocked = false;
    while (!closed && !blocked && pending.length > 0) write(frame(pending.shift()!));
  }
  const offer = (s: TrendingSnapshot): void => {
    if (closed) return;
    if (!blocked) return write(frame(s));
    // Latest-wins: a newer snapshot supersedes pending non-finals (any window's if it is
    // non-final, its own window's if final); finals are the settled answers, kept up to a bound.
    pending = pending.filter((p) => p.final || (s.final && p.windowStart !== s.windowStart));
    pending.push(s);
    const finals = pending.filter((p) => p.final);
    if (finals.length > maxFinals) pending = pending.filter((p) => p !== finals[0]);
  };

  const sub = backend.trending(window).subscribe({
    next: offer,
    error: () => close(),
  });
  const heartbeat = setInterval(() => {
    if (!blocked) write(`: heartbeat ${new Date().toISOString()}\n\n`);
  }, opts.heartbeatMs);
  function close(): void {
    if (closed) return;
    closed = true;
    clearInterval(heartbeat);
    sub.unsubscribe();
    pending = [];
    res.removeListener("drain", flush);
    res.end();
    onClose();
  }
  req.once("close", close);
  res.once("close", close);
  return close;
}
