import type { KV, NatsConnection, QueuedIterator, KvEntry } from "nats";
import { BUCKETS, idOfKvKey } from "./topology.js";
import { watchForStall } from "./stall.js";
import { createActor, type Actor } from "../../runtime/index.js";
import type { PopularityRow } from "../../actors/popularity.js";
import type { PopularityTable } from "../../actors/popularity-table.js";

/**
 * The popularity-table actor: watches the reco_popularity bucket (the broadcast side of the
 * join) and keeps this process's table current. Restarted by its supervisor if the watch dies;
 * a fresh watch delivers the bucket's current content again.
 */
export function createPopularityTableActor(
  nc: NatsConnection,
  table: PopularityTable,
): Actor<KvEntry> {
  let iter: QueuedIterator<KvEntry> | undefined;
  let stopStallWatch = () => undefined as void;
  let revision = 0;
  return createActor<KvEntry>({
    id: "popularity-table",
    behavior: {
      async start(ctx) {
        const kv: KV = await nc.jetstream().views.kv(BUCKETS.popularity);
        let resolveInit: () => void = () => undefined;
        const init = new Promise<void>((r) => (resolveInit = r));
        iter = await kv.watch({
          initializedFn: () => {
            (table as { initialised: boolean }).initialised = true;
            resolveInit();
          },
        });
        void (async () => {
          try {
            for await (const e of iter!) ctx.send(e);
          } catch (err) {
            if (!ctx.signal.aborted) ctx.fail(err);
          }
        })();
        // A watch that went silent while the bucket moved on fails this actor: a fresh watch.
        stopStallWatch = watchForStall(nc, `KV_${BUCKETS.popularity}`, () => revision, ctx.fail);
        await init;
      },
      receive(e) {
        revision = e.revision;
        if (e.operation !== "PUT") {
          table.apply({
            item: idOfKvKey(e.key),
            purchases: 0,
            category: "",
            brand: "",
            avgPrice: 0,
            wm: -1,
          });
          return;
        }
        table.apply(e.json<PopularityRow>());
      },
      stop() {
        stopStallWatch();
        iter?.stop();
      },
    },
  });
}
