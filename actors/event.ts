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

const UUID_RE = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;
// ISO-8601 date-time with an explicit zone (Z or ±hh:mm / ±hhmm).
const ISO_WITH_ZONE_RE =
  /^\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}(:\d{2}(\.\d{1,9})?)?(Z|[+-]\d{2}:?\d{2})$/i;
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

  let c = "";
  if (o.category_code !== undefined && o.category_code !== null && o.category_code !== "") {
    if (typeof o.category_code !== "string") return bad("invalid_field:category_code");
    const dot = o.category_code.indexOf(".");
    c = dot < 0 ? o.category_code : o.category_code.slice(0, dot);
  }
  let b = "";
  if (o.brand !== undefined && o.brand !== null && o.brand !== "") {
    if (typeof o.brand !== "string") return bad("invalid_field:brand");
    b = o.brand;
  }
  let pr = -1;
  if (o.price !== undefined && o.price !== null && o.price !== "") {
    const p = typeof o.price === "string" ? Number(o.price) : o.price;
    if (typeof p !== "number" || !Number.isFinite(p) || p < 0) return bad("invalid_field:price");
    pr = p;
  }
  let r = -1;
  if (o.rating !== undefined && o.rating !== null && o.rating !== "") {
    const v = typeof o.rating === "string" ? Number(o.rating) : o.rating;
    if (typeof v !== "number" || !Number.isFinite(v)) return bad("invalid_field:rating");
    if (v < 0.5 || v > 5) return bad("rating_out_of_range");
    r = v;
  }
  if (t === "rating" && r < 0) return bad("missing_field:rating");

  for (const f of OPTIONAL_STRINGS) {
    const v = o[f];
    if (v !== undefined && v !== null && typeof v !== "string") return bad(`invalid_field:${f}`);
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
  if (/^\d{1,16}$/.test(v)) return Number(v) <= MAX_TIME ? Number(v) : NaN;
  if (!ISO_WITH_ZONE_RE.test(v)) return NaN;
  const ms = Date.parse(v.replace(" ", "T"));
  return Number.isFinite(ms) ? ms : NaN;
}

/** The value unless it counts as absent (undefined, null or ""). */
function present(v: unknown): unknown {
  return v === undefined || v === null || v === "" ? undefined : v;
}

/** undefined: absent; null: present but not a non-empty string or positive integer. */
function normaliseId(v: unknown): string | null | undefined {
  if (v === undefined || v === null || v === "") return undefined;
  if (typeof v === "string") return v.trim() === "" ? null : v;
  if (typeof v === "number") return Number.isSafeInteger(v) && v > 0 ? String(v) : null;
  return null;
}

/** Whether an interaction counts as a purchase (the movies preset: a rating of 4 or more). */
export function isPurchase(e: Pick<Interaction, "t" | "r">, preset: Preset): boolean {
  if (preset === "movies") return e.t === "rating" && e.r >= 4;
  return e.t === "purchase";
}

export type Preset = "ecommerce" | "movies";
