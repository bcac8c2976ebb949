import type { KvEntry, NatsConnection } from "nats";
import { BUCKETS, idOfKvKey } from "./topology.js";
import { createKvWatchActor } from "./kv-watch.js";
import type { Actor } from "../../runtime/index.js";
import type { CatalogueTable } from "../../actors/serving/index.js";
import type { ExplicitFields, LearnedFields } from "../../actors/contract/index.js";

/**
 * The catalogue actor: watches the reco_catalogue bucket (both layers the catalogue stages put:
 * `l.<item>` learned from events, `x.<item>` written through the API) and keeps this process's
 * catalogue table current.
 */
export function createCatalogueTableActor(
  nc: NatsConnection,
  table: CatalogueTable,
): Actor<KvEntry | "tick"> {
  return createKvWatchActor(nc, {
    id: "catalogue-table",
    bucket: BUCKETS.catalogue,
    initialised: () => table.setInitialised(),
    apply(e) {
      const layer = e.key.slice(0, 1);
      const item = idOfKvKey(e.key.slice(2));
      const put = e.operation === "PUT";
      if (layer === "l") table.applyLearned(item, put ? e.json<LearnedFields>() : undefined);
      else if (layer === "x") table.applyExplicit(item, put ? e.json<ExplicitFields>() : undefined);
    },
  });
}
