import type { KV, NatsConnection, QueuedIterator, KvEntry } from "nats";
import { BUCKETS, idOfKvKey } from "./topology.js";
import { watchForStall } from "./stall.js";
import { createActor, type Actor } from "../../runtime/index.js";
import type { CatalogueTable } from "../../actors/catalogue-table.js";
import type { ExplicitFields, LearnedFields } from "../../actors/catalogue.js";

/**
 * The catalogue actor: watches the reco_catalogue bucket (both layers the catalogue stages put)
 * and keeps this process's catalogue table current, as the popularity table's actor does for its
 * bucket. A fresh watch after a restart delivers the bucket's current content again.
 */
export function createCatalogueTableActor(
  nc: NatsConnection,
  table: CatalogueTable,
): Actor<KvEntry> {
  let iter: QueuedIterator<KvEntry> | undefined;
  let stopStallWatch = () => undefined as void;
  let revision = 0;
  return createActor<KvEntry>({
    id: "catalogue-table",
    behavior: {
      async start(ctx) {
        const kv: KV = await nc.jetstream().views.kv(BUCKETS.catalogue);
        let resolveInit: () => void = () => undefined;
        const init = new Promise<void>((r) => (resolveInit = r));
        iter = await kv.watch({
          initializedFn: () => {
            table.setInitialised();
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
        stopStallWatch = watchForStall(nc, `KV_${BUCKETS.catalogue}`, () => revision, ctx.fail);
        await init;
      },
      receive(e) {
        revision = e.revision;
        const layer = e.key.slice(0, 1);
        const item = idOfKvKey(e.key.slice(2));
        const put = e.operation === "PUT";
        if (layer === "l") table.applyLearned(item, put ? e.json<LearnedFields>() : undefined);
        else if (layer === "x")
          table.applyExplicit(item, put ? e.json<ExplicitFields>() : undefined);
      },
      stop() {
        stopStallWatch();
        iter?.stop();
      },
    },
  });
}
