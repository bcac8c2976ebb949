import { InvalidArgumentError, validateId } from "./invalid-argument.js";

/**
 * The item catalogue's fields and rules, free of any transport: what an upsert may say, how it
 * merges into what was said before, and how one item's view is resolved from its three layers.
 *
 * The layers come from different inputs and are kept apart so that the result does not depend on
 * how those inputs interleave:
 * - explicit: what `PUT /v1/items/{id}` and `items.upsert` said, in the order of their stream;
 * - base: the movies preset's titles and genres, read from a file at start (the same every run);
 * - learned: what events said of the item (category, brand, price), in the order of its partition.
 * A field an upsert set wins over the file, and the file over what events said.
 */

/** An upsert: any of the fields; those left out keep their value. */
export interface ItemUpsert {
  itemId: string;
  title?: string;
  categories?: string[];
  brand?: string;
  price?: number;
  labels?: string[];
  hidden?: boolean;
}

/** The explicit layer of one item: every field an upsert ever set, with the last upsert's time. */
export interface ExplicitFields {
  title?: string;
  categories?: string[];
  brand?: string;
  price?: number;
  labels?: string[];
  hidden?: boolean;
  /** When JetStream stored the last upsert applied (epoch ms): part of the log, so replays agree. */
  at: number;
  /** Its stream sequence: a writer waits until the catalogue shows it. */
  seq: number;
}

/** The learned layer of one item: the latest non-empty values events carried. */
export interface LearnedFields {
  /** Main category, "" when no event had one. */
  c: string;
  /** Brand, "" when none. */
  b: string;
  /** Price, -1 when none. */
  p: number;
  /** Event time of the event that last changed a field. */
  at: number;
}

/** The base layer: a film's title and genres from the movies file. */
export interface BaseFields {
  title: string;
  categories: string[];
}

/** One item as answers, the item page and `GET /v1/items/{id}` show it. */
export interface CatalogueItem {
  itemId: string;
  title: string;
  categories: string[];
  brand: string;
  /** null when nothing said a price. */
  price: number | null;
  labels: string[];
  hidden: boolean;
  /** Epoch ms of the last change to either layer that has a time; null when none. */
  updatedAt: number | null;
}

export const MAX_TITLE_LENGTH = 1024;
export const MAX_TEXT_LENGTH = 256;
export const MAX_LIST_ENTRIES = 64;

const FIELDS = ["title", "categories", "brand", "price", "labels", "hidden"] as const;

const text = (field: string, v: unknown, max: number): string => {
  if (typeof v !== "string") throw new InvalidArgumentError(field, `${field} must be a string`);
  if (v.length > max)
    throw new InvalidArgumentError(field, `${field} must be at most ${max} characters`);
  return v;
};

const list = (field: string, v: unknown): string[] => {
  if (!Array.isArray(v))
    throw new InvalidArgumentError(field, `${field} must be an array of strings`);
  if (v.length > MAX_LIST_ENTRIES)
    throw new InvalidArgumentError(field, `${field} must have at most ${MAX_LIST_ENTRIES} entries`);
  return v.map((e, k) => {
    if (typeof e !== "string" || e.trim() === "")
      throw new InvalidArgumentError(field, `${field}[${k}] must be a non-empty string`);
    return text(field, e, MAX_TEXT_LENGTH);
  });
};

/**
 * Checks an upsert body (a parsed JSON value) field by field: unknown fields are refused too, so a
 * misspelt `hiden` is a 400 naming it rather than an upsert that silently changes nothing.
 * `itemId`: the item of the request path; absent, the body's `item_id` (the NATS subject's form).
 */
export function validateItemUpsert(body: unknown, itemId?: string): ItemUpsert {
  if (typeof body !== "object" || body === null || Array.isArray(body))
    throw new InvalidArgumentError("body", "the body must be a JSON object");
  const o = body as Record<string, unknown>;
  const allowed = new Set<string>(itemId === undefined ? [...FIELDS, "item_id"] : FIELDS);
  for (const k of Object.keys(o))
    if (!allowed.has(k))
      throw new InvalidArgumentError(
        k,
        `${k.slice(0, 64)} is not an item field (${[...allowed].join(", ")})`,
      );
  let id = itemId;
  if (id === undefined) {
    const raw = o.item_id;
    if (raw === undefined) throw new InvalidArgumentError("item_id", "item_id is required");
    if (typeof raw === "number" && Number.isInteger(raw) && raw > 0) id = String(raw);
    else if (typeof raw === "string") id = raw;
    else throw new InvalidArgumentError("item_id", "item_id must be a string or positive integer");
  }
  const u: ItemUpsert = { itemId: validateId("item_id", id) };
  if (o.title !== undefined) u.title = text("title", o.title, MAX_TITLE_LENGTH);
  if (o.categories !== undefined) u.categories = list("categories", o.categories);
  if (o.brand !== undefined) u.brand = text("brand", o.brand, MAX_TEXT_LENGTH);
  if (o.price !== undefined) {
    if (typeof o.price !== "number" || !Number.isFinite(o.price) || o.price < 0)
      throw new InvalidArgumentError("price", "price must be a number >= 0");
    u.price = o.price;
  }
  if (o.labels !== undefined) u.labels = list("labels", o.labels);
  if (o.hidden !== undefined) {
    if (typeof o.hidden !== "boolean")
      throw new InvalidArgumentError("hidden", "hidden must be true or false");
    u.hidden = o.hidden;
  }
  return u;
}

/** The explicit layer after `u`, stored at `at` with stream sequence `seq`. */
export function mergeExplicit(
  prev: ExplicitFields | undefined,
  u: ItemUpsert,
  at: number,
  seq: number,
): ExplicitFields {
  const next: ExplicitFields = { ...(prev ?? {}), at, seq };
  for (const f of FIELDS)
    if (u[f] !== undefined) (next as unknown as Record<string, unknown>)[f] = u[f];
  return next;
}

/**
 * The learned layer after one event's fields; `prev` itself when they change nothing (an event
 * that says nothing of its item leaves no entry: no bucket write for every item merely viewed).
 */
export function learn(
  prev: LearnedFields | undefined,
  e: { c: string; b: string; pr: number; ts: number },
): LearnedFields | undefined {
  const c = e.c || prev?.c || "";
  const b = e.b || prev?.b || "";
  const p = e.pr >= 0 ? e.pr : (prev?.p ?? -1);
  if (prev ? prev.c === c && prev.b === b && prev.p === p : c === "" && b === "" && p < 0)
    return prev;
  return { c, b, p, at: prev === undefined ? e.ts : Math.max(prev.at, e.ts) };
}

/** One item's view from its layers (explicit over base over learned). */
export function resolveItem(
  itemId: string,
  x: ExplicitFields | undefined,
  base: BaseFields | undefined,
  learned: LearnedFields | undefined,
): CatalogueItem {
  const learnedPrice = learned !== undefined && learned.p >= 0 ? learned.p : null;
  const times = [x?.at, learned?.at].filter((t): t is number => t !== undefined);
  return {
    itemId,
    title: x?.title ?? base?.title ?? "",
    categories: x?.categories ?? base?.categories ?? (learned?.c ? [learned.c] : []),
    brand: x?.brand ?? learned?.b ?? "",
    price: x?.price ?? learnedPrice,
    labels: x?.labels ?? [],
    hidden: x?.hidden ?? false,
    updatedAt: times.length > 0 ? Math.max(...times) : null,
  };
}
