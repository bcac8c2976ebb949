import type { KvEntry, NatsConnection } from "nats";
import { BUCKETS } from "./topology.js";
import { createKvWatchActor } from "./kv-watch.js";
import type { Actor } from "../../runtime/index.js";
import type { TrendingHub } from "../../actors/serving/index.js";

/** The actor that feeds a hub from the reco_trending bucket and evaluates it on a timer. */
export function createTrendingHubActor(
  nc: NatsConnection,
  hub: TrendingHub,
  evaluateEveryMs: number,
): Actor<KvEntry | "tick"> {
  return createKvWatchActor(nc, {
    id: "trending-hub",
    bucket: BUCKETS.trending,
    apply: (e) => hub.apply(e.key, e.operation === "PUT" ? e.json() : undefined),
    tick: { everyMs: evaluateEveryMs, run: () => hub.evaluate() },
  });
}
