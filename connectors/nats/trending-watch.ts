import type { KvEntry, NatsConnection, QueuedIterator } from "nats";
import { BUCKETS } from "./topology.js";
import { watchForStall } from "./stall.js";
import { createActor, type Actor } from "../../runtime/index.js";
import type { TrendingHub } from "../../actors/trending-hub.js";

/** The actor that feeds a hub from the reco_trending bucket and evaluates it on a timer. */
export function createTrendingHubActor(
  nc: NatsConnection,
  hub: TrendingHub,
  evaluateEveryMs: number,
): Actor<KvEntry | "tick"> {
  let iter: QueuedIterator<KvEntry> | undefined;
  let timer: NodeJS.Timeout | undefined;
  let stopStallWatch = () => undefined as void;
  let revision = 0;
  return createActor<KvEntry | "tick">({
    id: "trending-hub",
    behavior: {
      async start(ctx) {
        const kv = await nc.jetstream().views.kv(BUCKETS.trending);
        iter = await kv.watch();
        void (async () => {
          try {
            for await (const e of iter!) ctx.send(e);
          } catch (err) {
            if (!ctx.signal.aborted) ctx.fail(err);
          }
        })();
        timer = setInterval(() => ctx.send("tick"), evaluateEveryMs);
        // A watch that went silent while the bucket moved on fails this actor: a fresh watch.
        stopStallWatch = watchForStall(nc, `KV_${BUCKETS.trending}`, () => revision, ctx.fail);
      },
      receive(m) {
        if (m === "tick") return hub.evaluate();
        revision = m.revision;
        hub.apply(m.key, m.operation === "PUT" ? m.json() : undefined);
      },
      stop() {
        clearInterval(timer);
        stopStallWatch();
        iter?.stop();
      },
    },
  });
}
