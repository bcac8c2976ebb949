import type { IncomingMessage } from "node:http";
import { createHash, randomUUID } from "node:crypto";
import { BackendUnavailableError } from "../../actors/backend.js";
import { validateItemUpsert, type CatalogueItem, type ItemUpsert } from "../../actors/catalogue.js";
import { HttpError } from "./api-errors.js";

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

async function readJson(req: IncomingMessage): Promise<unknown> {
  const type = req.headers["content-type"] ?? "";
  if (!/^application\/json\b/i.test(type))
    throw new HttpError(
      415,
      "INVALID_ARGUMENT",
      `content-type must be application/json (got ${JSON.stringify(type.slice(0, 100))})`,
    );
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of req as AsyncIterable<Buffer>) {
    size += chunk.length;
    if (size > MAX_ITEM_BODY_BYTES)
      throw new HttpError(
        413,
        "RESOURCE_EXHAUSTED",
        `the request body is over ${MAX_ITEM_BODY_BYTES} bytes`,
      );
    chunks.push(chunk);
  }
  try {
    return JSON.parse(Buffer.concat(chunks).toString("utf8"));
  } catch {
    throw new HttpError(400, "INVALID_ARGUMENT", "the body is not JSON: send an object of fields");
  }
}

/**
 * The upsert's message id: from the client's `Idempotency-Key` (a retried request counts once),
 * else a fresh one (kept across the writer's own retries): two equal PUTs on purpose (hide,
 * unhide, hide) must all count.
 */
export function upsertMsgId(req: IncomingMessage, itemId: string): string {
  const key = req.headers["idempotency-key"];
  if (typeof key === "string" && key.trim() !== "")
    return `item.${createHash("sha256").update(`${itemId}\n${key.trim()}`).digest("base64url")}`;
  return `item.${randomUUID()}`;
}

/** Reads, checks and stores one PUT: 200 with the item as stored, 202 when not shown in time. */
export async function putItem(
  req: IncomingMessage,
  itemId: string,
  upsert: UpsertItem,
): Promise<{ status: number; body: object }> {
  const u = validateItemUpsert(await readJson(req), itemId);
  let stored: CatalogueItem | undefined;
  try {
    stored = await upsert(u, upsertMsgId(req, itemId));
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
