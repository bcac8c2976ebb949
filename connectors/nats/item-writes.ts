import type { ItemUpsert } from "../../actors/contract/index.js";
import type { CatalogueTable } from "../../actors/serving/index.js";
import { subjects } from "../../actors/contract/index.js";
import type { JetStreamPublisher } from "./publisher.js";

/** How long a write waits for the catalogue to show it before answering "accepted". */
const SHOWN_WITHIN_MS = 5_000;

/**
 * Item upserts as the HTTP API stores them: published to `items.upsert` (the `ITEMS` stream,
 * read by the catalogue-upsert stage) as a NATS publisher would send them, then awaited in this
 * process's catalogue by their stream sequence, so the answer is the item as stored.
 */
export function createItemWrites(publisher: JetStreamPublisher, catalogue: CatalogueTable) {
  const enc = new TextEncoder();
  return async (u: ItemUpsert, msgId: string) => {
    const { itemId, ...fields } = u;
    const data = enc.encode(JSON.stringify({ item_id: itemId, ...fields }));
    const ack = await publisher.publish(subjects.itemsUpsert, data, { msgId });
    return (await catalogue.whenApplied(itemId, ack.seq, SHOWN_WITHIN_MS))
      ? catalogue.get(itemId)
      : undefined;
  };
}
