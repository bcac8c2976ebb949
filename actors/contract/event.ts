/**
 * The click-event contract v1 (DESIGN.md §2): validation and normalisation of one event.
 * Pure: no I/O, no clock. A bad event yields a machine-readable reason instead of throwing.
 */

export const EVENT_TYPES = [
  "view",
  "click",
  "cart",
  "purchase",
  "rating",
  "remove_from_cart",
] as const;
export type EventType = (typeof EVENT_TYPES)[number];

/** A normalised event as it travels between stages (short keys keep hop payloads small). */
export interface Interaction {
  /** event_id */
  id: string;
  /** event_type */
  t: EventType;
  /** event time, epoch ms */
  ts: number;
  /** user_id, normalised to string */
  u: string;
  /** item_id (or product_id / movie_id) */
  i: string;
  /** main category (first segment of category_code), "" when absent */
  c: string;
  /** brand, "" when absent */
  b: string;
  /** price, -1 when absent */
  pr: number;
  /** rating, -1 when absent */
  r: number;
}

export type ParseResult = { ok: true; event: Interaction } | { ok: false; reason: string };

export interface ParseOptions {
  /** Maximum user_id length (DESIGN: 128). */
  maxUserIdLength?: number;
  /** Maximum review_text length (DESIGN: 5,000). */
  maxReviewLength?: number;
}

/**
 * Longest value (UTF-16 code units, as `String.length` counts) of the other string fields; a longer
 * one is dead-lettered as `field_too_long:<field>`. Ids become KV keys and subjects
 * (`$KV.reco_popularity.<key>`, base64url when not plain): nats-server drops the connection of a
 * client whose protocol line passes 4,096 bytes, so an unbounded item_id broke a partition for
 * good. 256 units are at most 768 UTF-8 bytes, 1,024 characters of base64url.
 */
export const FIELD_LIMITS: Readonly<Record<string, number>> = {
  item_id: 256,
  category_code: 256,
  brand: 256,
  session_id: 256,
  device_type: 256,
  click_type: 256,
  page_url: 2048,
  referrer: 2048,
};

const UUID_RE = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;
// ISO-8601 date-time with an explicit zone (Z or ±hh:mm / ±hhmm); the parts are checked apart.
const ISO_WITH_ZONE_RE =
  /^(\d{4})-(\d{2})-(\d{2})[T ](\d{2}):(\d{2})(?::(\d{2})(?:\.\d{1,9})?)?(?:Z|[+-](\d{2}):?(\d{2}))$/i;
// A decimal number as text: `Number()` alone also takes "0x10", "0b1", "Infinity" and " ".
const DECIMAL_RE = /^[+-]?(?:\d+(?:\.\d*)?|\.\d+)(?:e[+-]?\d+)?$/i;
const EVENT_TYPE_SET: ReadonlySet<string> = new Set(EVENT_TYPES);

const bad = (reason: string): ParseResult => ({ ok: false, reason });

// One decoder for every event: a non-streaming decode keeps no state between calls, and making a
// fatal TextDecoder per event was a measurable share of parse.
const utf8 = new TextDecoder("utf-8", { fatal: true });
const OPTIONAL_STRINGS = [
  "session_id",
  "page_url",
  "device_type",
  "click_type",
  "referrer",
] as const;

/** Parses the JSON bytes of one event. */
export function parseJsonEvent(bytes: Uint8Array, options: ParseOptions = {}): ParseResult {
  let value: unknown;
  try {
    value = JSON.parse(utf8.decode(bytes));
  } catch {
    return bad("bad_json");
  }
  return normaliseEvent(value, options);
}

/** Validates and normalises a decoded event object (from JSON or protobuf). */
export function normaliseEvent(value: unknown, options: ParseOptions = {}): ParseResult {
  if (typeof value !== "object" || value === null || Array.isArray(value)) return bad("not_object");
  const o = value as Record<string, unknown>;
  const maxUser = options.maxUserIdLength ?? 128;
  const maxReview = options.maxReviewLength ?? 5000;

  const id = o.event_id;
  if (id === undefined || id === null || id === "") return bad("missing_field:event_id");
  if (typeof id !== "string" || !UUID_RE.test(id)) return bad("invalid_field:event_id");

  const t = o.event_type;
  if (t === undefined || t === null || t === "") return bad("missing_field:event_type");
  if (typeof t !== "string" || !EVENT_TYPE_SET.has(t)) return bad("invalid_field:event_type");

  const ts = parseEventTime(o.event_ts);
  if (ts === undefined) return bad("missing_field:event_ts");
  if (Number.isNaN(ts)) return bad("invalid_field:event_ts");

  const u = normaliseId(o.user_id);
  if (u === undefined) return bad("missing_field:user_id");
  if (u === null) return bad("invalid_field:user_id");
  if (u.length > maxUser) return bad("user_id_too_long");

  // The first alias present and non-empty wins: an empty item_id must not hide a product_id.
  const i = normaliseId(present(o.item_id) ?? present(o.product_id) ?? present(o.movie_id));
  if (i === undefined) return bad("missing_field:item_id");
  if (i === null) return bad("invalid_field:item_id");
  if (i.length > FIELD_LIMITS.item_id!) return bad("field_too_long:item_id");

  let c = "";
  if (o.category_code !== undefined && o.category_code !== null && o.category_code !== "") {
    if (typeof o.category_code !== "string") return bad("invalid_field:category_code");
    if (o.category_code.length > FIELD_LIMITS.category_code!)
      return bad("field_too_long:category_code");
    const dot = o.category_code.indexOf(".");
    c = dot < 0 ? o.category_code : o.category_code.slice(0, dot);
  }
  let b = "";
  if (o.brand !== undefined && o.brand !== null && o.brand !== "") {
    if (typeof o.brand !== "string") return bad("invalid_field:brand");
    if (o.brand.length > FIELD_LIMITS.brand!) return bad("field_too_long:brand");
    b = o.brand;
  }
  let pr = -1;
  if (o.price !== undefined && o.price !== null && o.price !== "") {
    const p = typeof o.price === "string" ? decimal(o.price) : o.price;
    if (typeof p !== "number" || !Number.isFinite(p) || p < 0) return bad("invalid_field:price");
    pr = p;
  }
  let r = -1;
  if (o.rating !== undefined && o.rating !== null && o.rating !== "") {
    const v = typeof o.rating === "string" ? decimal(o.rating) : o.rating;
    if (typeof v !== "number" || !Number.isFinite(v)) return bad("invalid_field:rating");
    if (v < 0.5 || v > 5) return bad("rating_out_of_range");
    r = v;
  }
  if (t === "rating" && r < 0) return bad("missing_field:rating");

  for (const f of OPTIONAL_STRINGS) {
    const v = o[f];
    if (v === undefined || v === null) continue;
    if (typeof v !== "string") return bad(`invalid_field:${f}`);
    if (v.length > FIELD_LIMITS[f]!) return bad(`field_too_long:${f}`);
  }
  if (o.review_text !== undefined && o.review_text !== null) {
    if (typeof o.review_text !== "string") return bad("invalid_field:review_text");
    if (o.review_text.length > maxReview) return bad("review_text_too_long");
  }
  return { ok: true, event: { id: id.toLowerCase(), t: t as EventType, ts, u, i, c, b, pr, r } };
}

/**
 * The largest time a Date can hold. A larger one would become the progress and make every later
 * event late on every path.
 */
const MAX_TIME = 8.64e15;

/** undefined: absent; NaN: present but unparsable; else epoch ms. */
function parseEventTime(v: unknown): number | undefined {
  if (v === undefined || v === null || v === "") return undefined;
  if (typeof v === "number") return Number.isInteger(v) && v >= 0 && v <= MAX_TIME ? v : NaN;
  if (typeof v !== "string") return NaN;
  if (EPOCH_MS_RE.test(v)) return Number(v) <= MAX_TIME ? Number(v) : NaN;
  const m = ISO_WITH_ZONE_RE.exec(v);
  if (m === null) return NaN;
  // Date.parse rolls an impossible date over ("2019-02-30" became 2 March): check each part.
  // Read one by one (an absent part is 0): destructuring a mapped copy of the match allocated
  // an array and an iterator per event, ~4% of what bench step 2 allocated.
  const year = partOf(m, 1);
  const month = partOf(m, 2);
  const day = partOf(m, 3);
  if (month < 1 || month > 12 || day < 1 || day > daysInMonth(year, month)) return NaN;
  if (partOf(m, 4) > 23 || partOf(m, 5) > 59 || partOf(m, 6) > 59) return NaN;
  if (partOf(m, 7) > 23 || partOf(m, 8) > 59) return NaN;
  const ms = Date.parse(v.replace(" ", "T"));
  return Number.isFinite(ms) ? ms : NaN;
}

const EPOCH_MS_RE = /^\d{1,16}$/;
const partOf = (m: RegExpExecArray, x: number): number => Number(m[x] ?? 0);

function daysInMonth(year: number, month: number): number {
  if (month === 2) return year % 4 === 0 && (year % 100 !== 0 || year % 400 === 0) ? 29 : 28;
  return month === 4 || month === 6 || month === 9 || month === 11 ? 30 : 31;
}

/** A string holding a decimal number, as a number; NaN for anything else. */
function decimal(s: string): number {
  return DECIMAL_RE.test(s) ? Number(s) : NaN;
}

/** The value unless it counts as absent (undefined, null or ""). */
function present(v: unknown): unknown {
  return v === undefined || v === null || v === "" ? undefined : v;
}

// With the u flag a class of surrogates matches only unpaired ones: such a string has no UTF-8
// form (Buffer and LevelDB turn each into U+FFFD), so two different ids would share state and keys.
const LONE_SURROGATE_RE = /[\uD800-\uDFFF]/u;

/** undefined: absent; null: present but not a non-empty string or positive integer. */
function normaliseId(v: unknown): string | null | undefined {
  if (v === undefined || v === null || v === "") return undefined;
  if (typeof v === "string") return v.trim() === "" || LONE_SURROGATE_RE.test(v) ? null : v;
  if (typeof v === "number") return Number.isSafeInteger(v) && v > 0 ? String(v) : null;
  return null;
}

/** Whether an interaction counts as a purchase (the movies preset: a rating of 4 or more). */
export function isPurchase(e: Pick<Interaction, "t" | "r">, preset: Preset): boolean {
  if (preset === "movies") return e.t === "rating" && e.r >= 4;
  return e.t === "purchase";
}

export type Preset = "ecommerce" | "movies";

/** A parsed event on the hop to the next stages: the event, its input sequence and the progress before it. */
export interface ParsedRecord extends Interaction {
  /** Sequence of the event in the EVENTS stream: downstream drops records it has seen. */
  s: number;
  /** Event-time progress (max event time over all earlier accepted events), -1 at first. */
  wb: number;
}

/**
 * Co-visitation's record from a user partition's history stage to an item partition's covisit
 * stage (`reco.pairs.<q>.<p>`): one per event and item partition it concerns. In the partition of
 * the event's item it carries the event (`e`: the item's totals and counters) and every item the
 * event pairs with (the item's links to them, and the links back from those this partition
 * holds); in another partition, the items there that link back to the event's item. A record
 * with `p` and no event is the user partition's event-time progress, sent to every partition when
 * it moves without events.
 */
export interface PairRecord {
  /** EVENTS sequence of the event (of a mark: the input position its records are complete to). */
  s: number;
  /** The event's item. */
  i: string;
  ts: number;
  /** The items it pairs with, and each pair's weight. */
  n: readonly string[];
  w: readonly number[];
  /** The event, in its item's partition: what its item's totals and counters read of it. */
  e?: PairEvent;
  /** Event-time progress (a mark). */
  p?: number;
}

/**
 * What a pair record carries of its event (the rest is the record's own `i`, `ts`, `s`): the
 * type as the sources count it (a movies rating is `rating`), category, rating, price and the
 * progress before it.
 */
export interface PairEvent {
  t: EventType | "rating";
  c: string;
  r: number;
  pr: number;
  wb: number;
}
