import type { KvEntry, NatsConnection } from "nats";
import { BUCKETS, idOfKvKey } from "./topology.js";
import { createKvWatchActor } from "./kv-watch.js";
import type { Actor } from "../../runtime/index.js";
import type { PopularityRow, PopularityTable } from "../../actors/stages/index.js";

/**
 * The popularity-table actor: watches the reco_popularity bucket (the broadcast side of the
 * join) and keeps this process's table current; a deleted row is an item no longer popular.
 */
export function createPopularityTableActor(
  nc: NatsConnection,
  table: PopularityTable,
): Actor<KvEntry | "tick"> {
  return createKvWatchActor(nc, {
    id: "popularity-table",
    bucket: BUCKETS.popularity,
    initialised: () => void ((table as { initialised: boolean }).initialised = true),
    apply(e) {
      if (e.operation === "PUT") return table.apply(e.json<PopularityRow>());
      table.apply({
        item: idOfKvKey(e.key),
        purchases: 0,
        category: "",
        brand: "",
        avgPrice: 0,
        wm: -1,
      });
    },
  });
}
