import type { IncomingHttpHeaders } from "node:http";
import { createHash, randomUUID } from "node:crypto";
import {
  BackendUnavailableError,
  validateItemUpsert,
  type CatalogueItem,
  type ItemUpsert,
} from "../../actors/contract/index.js";

/**
 * `PUT /v1/items/{id}`: a merchandiser's upsert of one item (title, categories, brand, price,
 * labels, hidden). The body is checked here into a typed upsert; storing it is the writer's
 * (connectors/nats/item-writes.ts: published to `items.upsert`, applied by the catalogue stage).
 */

/** A PUT body at most (a title, a few lists). */
export const MAX_ITEM_BODY_BYTES = 64 * 1024;

/**
 * Stores an upsert under `msgId` (a retried request with the same id counts once); resolves with
 * the item as the catalogue then shows it, or undefined when it did not show it in time.
 */
export type UpsertItem = (u: ItemUpsert, msgId: string) => Promise<CatalogueItem | undefined>;

/** The item as the JSON API shows it (the catalogue's fields, times as ISO text). */
export function catalogueJson(c: CatalogueItem) {
  return { ...c, updatedAt: c.updatedAt === null ? null : new Date(c.updatedAt).toISOString() };
}

/**
 * The upsert's message id: from the client's `Idempotency-Key` (a retried request counts once),
 * else a fresh one (kept across the writer's own retries): two equal PUTs on purpose (hide,
 * unhide, hide) must all count.
 */
export function upsertMsgId(headers: IncomingHttpHeaders, itemId: string): string {
  const key = headers["idempotency-key"];
  if (typeof key === "string" && key.trim() !== "")
    return `item.${createHash("sha256").update(`${itemId}\n${key.trim()}`).digest("base64url")}`;
  return `item.${randomUUID()}`;
}

/**
 * Checks and stores one PUT's parsed body: 200 with the item as stored, 202 when not shown in
 * time. The catalogue's own check (shared with `items.upsert` over NATS) names a bad field, so
 * both doors give the same reasons.
 */
export async function putItem(
  body: unknown,
  headers: IncomingHttpHeaders,
  itemId: string,
  upsert: UpsertItem,
): Promise<{ status: number; body: object }> {
  const u = validateItemUpsert(body, itemId);
  let stored: CatalogueItem | undefined;
  try {
    stored = await upsert(u, upsertMsgId(headers, itemId));
  } catch (err) {
    throw new BackendUnavailableError(
      `the item could not be stored (${err instanceof Error ? err.message : String(err)}): send the same request again`,
    );
  }
  return stored
    ? { status: 200, body: catalogueJson(stored) }
    : {
        status: 202,
        body: { itemId, status: "accepted", message: "stored; the catalogue shows it shortly" },
      };
}
