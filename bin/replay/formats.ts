import { createHash } from "node:crypto";
import { extname } from "node:path";
import { parse as parseCsvSync } from "csv-parse/sync";

/**
 * Event-log file formats understood by `reco replay`, as pure functions from one row to one event.
 * Reading files lives in `text-files.ts`, line numbers and publishing in `run.ts`.
 */

export type ReplayFormat = "jsonl" | "rees46" | "movielens";
export const REPLAY_FORMATS: readonly ReplayFormat[] = ["jsonl", "rees46", "movielens"];

/** An event ready to publish: `event_id` becomes `Nats-Msg-Id`, `event_type` the subject. */
export interface ReplayEvent {
  event_id: string;
  event_type: string;
  [field: string]: unknown;
}

export type RowResult =
  | {
      ok: true;
      event: ReplayEvent;
      /** The bytes to publish when they can be sent as they are (a JSONL line with an id). */
      raw?: string;
    }
  | { ok: false; reason: string };

export const REES46_COLUMNS = [
  "event_time",
  "event_type",
  "product_id",
  "category_id",
  "category_code",
  "brand",
  "price",
  "user_id",
  "user_session",
] as const;
export const MOVIELENS_RATINGS_COLUMNS = ["userId", "movieId", "rating", "timestamp"] as const;
export const MOVIELENS_MOVIES_COLUMNS = ["movieId", "title", "genres"] as const;

/** Fixed namespace for replayed ids, so they never collide with other name-based UUIDs. */
const REPLAY_NAMESPACE = Buffer.from("6f1c2a8e4b7d4e0a9c3f5d1e2b8a7c60", "hex");

/**
 * A deterministic UUID (version 5 layout) from a row's content: the SHA-1 of its fields under a
 * fixed namespace. The same row gives the same id whatever file it is in and wherever in it, so
 * a second replay of a file, or of a renamed or recompressed copy, is recognised as the same
 * events (by JetStream inside its duplicate window, by the engine's event-id memory after it).
 * Two identical rows are one event: REES46 logs hold a few exact repeats, which are duplicates.
 * The format is part of the hash, so a JSONL line and a CSV row never share an id.
 */
export function deriveEventId(format: ReplayFormat, fields: readonly string[]): string {
  const h = createHash("sha1").update(REPLAY_NAMESPACE).update(format);
  for (const f of fields) h.update("\u001f").update(f);
  const d = h.digest();
  d[6] = (d[6]! & 0x0f) | 0x50;
  d[8] = (d[8]! & 0x3f) | 0x80;
  const x = d.toString("hex", 0, 16);
  return `${x.slice(0, 8)}-${x.slice(8, 12)}-${x.slice(12, 16)}-${x.slice(16, 20)}-${x.slice(20)}`;
}

/** The subject an event is published to. */
export function subjectFor(event: ReplayEvent): string {
  return `events.${event.event_type}`;
}

// eslint-disable-next-line no-control-regex -- matching control characters is the point
const CONTROL_CHARS = /[\u0000-\u001f\u007f]/;

// One subject token: no dots, wildcards or whitespace.
const EVENT_TYPE = /^[A-Za-z0-9_-]+$/;

function checkEventType(v: unknown): string | undefined {
  if (v === undefined || v === null || v === "") return "missing event_type";
  if (typeof v !== "string" || !EVENT_TYPE.test(v)) return `bad event_type ${quote(v)}`;
  return undefined;
}

function quote(v: unknown): string {
  const s = typeof v === "string" ? v : JSON.stringify(v);
  return JSON.stringify(s.length > 60 ? `${s.slice(0, 57)}...` : s);
}

/**
 * One JSONL line. The object is passed through as it is; only a missing `event_id` is filled in
 * (see {@link deriveEventId}, from the line's text). Blank lines are the caller's to skip.
 */
export function parseJsonlLine(text: string): RowResult {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (err) {
    return { ok: false, reason: `bad JSON: ${(err as Error).message}` };
  }
  if (typeof value !== "object" || value === null || Array.isArray(value)) {
    return { ok: false, reason: "bad JSON: not an object" };
  }
  const obj = value as Record<string, unknown>;
  const typeProblem = checkEventType(obj.event_type);
  if (typeProblem) return { ok: false, reason: typeProblem };
  const id = obj.event_id;
  if (id === undefined || id === null) {
    return {
      ok: true,
      event: { ...obj, event_id: deriveEventId("jsonl", [text.trim()]) } as ReplayEvent,
    };
  }
  // The id travels as the Nats-Msg-Id header, which cannot hold CR or LF: such a row would make
  // the publish itself fail and end the whole replay.
  if (typeof id !== "string" || id === "" || CONTROL_CHARS.test(id))
    return { ok: false, reason: `bad event_id ${quote(id)}` };
  return { ok: true, event: obj as ReplayEvent, raw: text };
}

const REES46_TIME = /^(\d{4}-\d{2}-\d{2}) (\d{2}:\d{2}:\d{2}(?:\.\d{1,9})?) UTC$/;

/** `2019-10-01 00:00:00 UTC` → `2019-10-01T00:00:00Z`; undefined when not such a time. */
export function rees46TimeToIso(s: string): string | undefined {
  const m = REES46_TIME.exec(s);
  if (!m) return undefined;
  const iso = `${m[1]}T${m[2]}Z`;
  // Rejects 2019-13-01 and 25:00:00; Date.parse alone would roll 2019-02-30 over to March.
  const t = Date.parse(iso);
  if (Number.isNaN(t) || new Date(t).toISOString().slice(0, 10) !== m[1]) return undefined;
  return iso;
}

/** One REES46 e-commerce row (`event_time,event_type,product_id,...,user_session`). */
export function parseRees46Row(fields: readonly string[]): RowResult {
  if (fields.length !== REES46_COLUMNS.length) {
    return {
      ok: false,
      reason: `expected ${REES46_COLUMNS.length} columns, got ${fields.length}`,
    };
  }
  const [time, type, productId, , categoryCode, brand, price, userId, session] = fields as [
    string,
    string,
    string,
    string,
    string,
    string,
    string,
    string,
    string,
  ];
  const typeProblem = checkEventType(type);
  if (typeProblem) return { ok: false, reason: typeProblem };
  if (time === "") return { ok: false, reason: "missing event_time" };
  const eventTs = rees46TimeToIso(time);
  if (eventTs === undefined) return { ok: false, reason: `bad timestamp ${quote(time)}` };
  if (productId === "") return { ok: false, reason: "missing product_id" };
  if (userId === "") return { ok: false, reason: "missing user_id" };
  const event: ReplayEvent = {
    event_id: deriveEventId("rees46", fields),
    event_type: type,
    event_ts: eventTs,
    user_id: userId,
    item_id: productId,
  };
  if (categoryCode !== "") event.category_code = categoryCode;
  if (brand !== "") event.brand = brand;
  if (price !== "") {
    const p = parseNumber(price);
    if (p === undefined || p < 0) return { ok: false, reason: `bad price ${quote(price)}` };
    event.price = p;
  }
  if (session !== "") event.session_id = session;
  return { ok: true, event };
}

/**
 * One MovieLens `ratings.csv` row (`userId,movieId,rating,timestamp`, epoch seconds) as a
 * `rating` event. `genres` maps movieId to a category (see {@link parseMoviesRow}).
 */
export function parseMovieLensRow(
  fields: readonly string[],
  genres?: ReadonlyMap<string, string>,
): RowResult {
  if (fields.length !== MOVIELENS_RATINGS_COLUMNS.length) {
    return {
      ok: false,
      reason: `expected ${MOVIELENS_RATINGS_COLUMNS.length} columns, got ${fields.length}`,
    };
  }
  const [userId, movieId, ratingText, tsText] = fields as [string, string, string, string];
  if (userId === "") return { ok: false, reason: "missing userId" };
  if (movieId === "") return { ok: false, reason: "missing movieId" };
  if (ratingText === "") return { ok: false, reason: "missing rating" };
  const rating = parseNumber(ratingText);
  if (rating === undefined) return { ok: false, reason: `bad rating ${quote(ratingText)}` };
  if (tsText === "") return { ok: false, reason: "missing timestamp" };
  const seconds = parseNumber(tsText);
  if (seconds === undefined || !Number.isInteger(seconds) || seconds < 0) {
    return { ok: false, reason: `bad timestamp ${quote(tsText)}` };
  }
  const event: ReplayEvent = {
    event_id: deriveEventId("movielens", fields),
    event_type: "rating",
    event_ts: seconds * 1000,
    user_id: userId,
    movie_id: movieId,
    rating,
  };
  const category = genres?.get(movieId);
  if (category !== undefined) event.category_code = category;
  return { ok: true, event };
}

/**
 * One MovieLens `movies.csv` row (`movieId,title,genres`, genres like `Action|Comedy`):
 * the movie's category is its first genre, lowercased. Undefined for `(no genres listed)`.
 */
export function parseMoviesRow(
  fields: readonly string[],
): { ok: true; movieId: string; category: string | undefined } | { ok: false; reason: string } {
  if (fields.length !== MOVIELENS_MOVIES_COLUMNS.length) {
    return {
      ok: false,
      reason: `expected ${MOVIELENS_MOVIES_COLUMNS.length} columns, got ${fields.length}`,
    };
  }
  const [movieId, , genres] = fields as [string, string, string];
  if (movieId === "") return { ok: false, reason: "missing movieId" };
  const first = genres.split("|")[0]!.trim().toLowerCase();
  const category = first === "" || first.startsWith("(") ? undefined : first.replace(/\s+/g, "-");
  return { ok: true, movieId, category };
}

/** A plain decimal number (no hex, no empty string, no `Infinity`). */
function parseNumber(s: string): number | undefined {
  if (!/^[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?$/.test(s.trim())) return undefined;
  const n = Number(s);
  return Number.isFinite(n) ? n : undefined;
}

/**
 * The fields of one CSV line. Lines without a quote (nearly all rows of these data sets) are
 * split directly; the others go through csv-parse. Quoted fields spanning lines are not
 * supported (none of these formats has them): such a line is reported as bad.
 */
export function splitCsvLine(
  line: string,
): { ok: true; fields: string[] } | { ok: false; reason: string } {
  if (!line.includes('"')) return { ok: true, fields: line.split(",") };
  try {
    const records = parseCsvSync(line, { relax_column_count: true }) as string[][];
    return { ok: true, fields: records[0] ?? [] };
  } catch (err) {
    return { ok: false, reason: `bad CSV: ${(err as Error).message}` };
  }
}

/** True when a CSV record is the header row of `columns`. */
export function isHeader(fields: readonly string[], columns: readonly string[]): boolean {
  return fields.length === columns.length && fields.every((f, i) => f.trim() === columns[i]);
}

/**
 * Picks the format from the file's first line, then from its extension (`.jsonl`, `.ndjson`,
 * optionally `.gz`). Undefined when neither tells.
 */
export function detectFormat(path: string, firstLine: string): ReplayFormat | undefined {
  const head = firstLine.replace(/^\uFEFF/, "").trim();
  if (head.startsWith("{")) return "jsonl";
  const cols = head.split(",").map((c) => c.trim().replace(/^"|"$/g, ""));
  if (isHeader(cols, REES46_COLUMNS)) return "rees46";
  if (isHeader(cols, MOVIELENS_RATINGS_COLUMNS)) return "movielens";
  const ext = extname(path.replace(/\.gz$/i, "")).toLowerCase();
  if (ext === ".jsonl" || ext === ".ndjson") return "jsonl";
  return undefined;
}

/** A row parser for one file; `undefined` for the CSV header line. */
export function rowParser(
  format: ReplayFormat,
  genres: ReadonlyMap<string, string> | undefined,
): (text: string, line: number) => RowResult | undefined {
  if (format === "jsonl") return (text) => parseJsonlLine(text);
  const columns = format === "rees46" ? REES46_COLUMNS : MOVIELENS_RATINGS_COLUMNS;
  return (text, line) => {
    const split = splitCsvLine(text);
    if (!split.ok) return split;
    if (line === 1 && isHeader(split.fields, columns)) return undefined;
    return format === "rees46"
      ? parseRees46Row(split.fields)
      : parseMovieLensRow(split.fields, genres);
  };
}
