import { toBinary } from "@bufbuild/protobuf";
import {
  GetRecommendationsResponseSchema,
  type GetRecommendationsResponse,
  type RecommendedItem,
} from "../../proto/gen/reco/v1/reco_pb.js";

/**
 * GetRecommendations' response bytes, written by hand: the same bytes as protobuf-es's `toBinary`
 * of the whole message (fields in number order, proto3 defaults left out), in one buffer sized
 * first. Under ingest every answer is new (bench step 4b) and `toBinary` was ~30% of a fresh
 * answer's CPU in the serving process's profile: its writer starts at 128 bytes and doubles
 * (four zeroed allocations and copies for a ~700-byte answer), and walks the descriptors for
 * every field. A message this code does not expect (unknown fields, a value outside what the
 * checks below allow) is encoded by `toBinary`, so nothing here decides what the bytes mean.
 *
 * A memoised answer (actors/recommender-memo.ts) is served again and again with the same items:
 * their bytes (field 2, every element with its tag and length) are kept per items array that
 * toRecommendationsResponse built, and each call writes the rest around them. Only arrays marked
 * by `keepItemBytes` are kept: they are built from an answer's items and never changed after
 * (nothing mutates an answer: the memo hands the same one to every caller).
 */

/** Encoded items (field 2, every element with its tag and length) per marked items array. */
const itemBytes = new WeakMap<readonly RecommendedItem[], Uint8Array>();
/** Items arrays whose bytes may be kept (built by toRecommendationsResponse, never changed). */
const keepable = new WeakSet<readonly RecommendedItem[]>();

/** Marks an items array as immutable from now on, so its encoding may be kept. */
export function keepItemBytes(items: readonly RecommendedItem[]): void {
  keepable.add(items);
}

/** `toBinary(GetRecommendationsResponseSchema, msg)`, reusing the items' bytes when kept. */
export function encodeRecommendationsResponse(msg: GetRecommendationsResponse): Uint8Array {
  return encodeByHand(msg) ?? toBinary(GetRecommendationsResponseSchema, msg);
}

const MAX_UINT32 = 0xffffffff;
const isUint32 = (v: unknown): v is number =>
  typeof v === "number" && Number.isInteger(v) && v >= 0 && v <= MAX_UINT32;
/** A non-negative int32 (an enum value, nanos): written as a plain varint. */
const isInt32 = (v: unknown): v is number =>
  typeof v === "number" && Number.isInteger(v) && v >= 0 && v <= 0x7fffffff;
/** A (u)int64 held as a bigint that a double holds exactly: written as a plain varint. */
const isSmall64 = (v: unknown): v is bigint =>
  typeof v === "bigint" && v >= 0n && v <= BigInt(Number.MAX_SAFE_INTEGER);

/** Bytes of a varint of v (0 <= v <= 2^53). */
function varintSize(v: number): number {
  let n = 1;
  while (v >= 128) {
    v = Math.floor(v / 128);
    n++;
  }
  return n;
}

/**
 * UTF-8 length of s, as TextEncoder and Buffer write it (a lone surrogate becomes U+FFFD, three
 * bytes). Counted here: Buffer.byteLength is a call into C++ per string, and an answer has ~40
 * short ones.
 */
function utf8Length(s: string): number {
  let n = s.length;
  for (let x = 0; x < s.length; x++) {
    const c = s.charCodeAt(x);
    if (c < 0x80) continue;
    if (c < 0x800) n += 1;
    else if (c >= 0xd800 && c <= 0xdbff && x + 1 < s.length) {
      const d = s.charCodeAt(x + 1);
      // A pair: two code units, four bytes; a lone high surrogate: three bytes.
      if (d >= 0xdc00 && d <= 0xdfff) {
        n += 2;
        x++;
      } else n += 2;
    } else n += 2;
  }
  return n;
}

/** A string field's bytes with its tag and length, 0 when it is "" (proto3 leaves it out). */
const strSize = (s: string): number => {
  if (s === "") return 0;
  const len = utf8Length(s);
  return 1 + varintSize(len) + len;
};

interface Writer {
  buf: Buffer;
  at: number;
}

function writeVarint(w: Writer, v: number): void {
  while (v >= 128) {
    w.buf[w.at++] = (v % 128) | 0x80;
    v = Math.floor(v / 128);
  }
  w.buf[w.at++] = v;
}

function writeStr(w: Writer, tag: number, s: string): void {
  if (s === "") return;
  w.buf[w.at++] = tag;
  const len = utf8Length(s);
  writeVarint(w, len);
  if (len === s.length) {
    // ASCII (every other character takes more than one byte): its codes are its bytes.
    const buf = w.buf;
    let at = w.at;
    for (let x = 0; x < len; x++) buf[at++] = s.charCodeAt(x);
    w.at = at;
  } else w.at += w.buf.write(s, w.at, "utf8");
}

function writeDouble(w: Writer, tag: number, d: number): void {
  if (Object.is(d, 0)) return;
  w.buf[w.at++] = tag;
  w.at = w.buf.writeDoubleLE(d, w.at);
}

/** A varint field (uint32, enum, uint64 as a number), left out when 0. */
function writeNum(w: Writer, tag: number, v: number): void {
  if (v === 0) return;
  w.buf[w.at++] = tag;
  writeVarint(w, v);
}

/** An item's body size, or -1 when it holds a value this code does not write. */
function itemBodySize(i: RecommendedItem): number {
  if (i.$typeName !== "reco.v1.RecommendedItem" || (i.$unknown?.length ?? 0) > 0) return -1;
  if (typeof i.score !== "number" || typeof i.averagePrice !== "number") return -1;
  if (!isUint32(i.rank) || !isInt32(i.source) || !isSmall64(i.purchases)) return -1;
  if (typeof i.itemId !== "string" || typeof i.category !== "string") return -1;
  if (typeof i.brand !== "string" || typeof i.explanation !== "string") return -1;
  const purchases = Number(i.purchases);
  return (
    strSize(i.itemId) +
    (Object.is(i.score, 0) ? 0 : 9) +
    (i.rank === 0 ? 0 : 1 + varintSize(i.rank)) +
    strSize(i.category) +
    strSize(i.brand) +
    (Object.is(i.averagePrice, 0) ? 0 : 9) +
    (i.source === 0 ? 0 : 1 + varintSize(i.source)) +
    (purchases === 0 ? 0 : 1 + varintSize(purchases)) +
    strSize(i.explanation)
  );
}

function writeItem(w: Writer, i: RecommendedItem, body: number): void {
  w.buf[w.at++] = 0x12;
  writeVarint(w, body);
  writeStr(w, 0x0a, i.itemId);
  writeDouble(w, 0x11, i.score);
  writeNum(w, 0x18, i.rank);
  writeStr(w, 0x22, i.category);
  writeStr(w, 0x2a, i.brand);
  writeDouble(w, 0x31, i.averagePrice);
  writeNum(w, 0x38, i.source);
  writeNum(w, 0x40, Number(i.purchases));
  writeStr(w, 0x4a, i.explanation);
}

/** The items' bytes (field 2), or undefined when one of them is not for this code. */
function encodeItems(items: readonly RecommendedItem[]): Uint8Array | undefined {
  const bodies = new Array<number>(items.length);
  let size = 0;
  for (let x = 0; x < items.length; x++) {
    const b = itemBodySize(items[x]!);
    if (b < 0) return undefined;
    bodies[x] = b;
    size += 1 + varintSize(b) + b;
  }
  const w: Writer = { buf: Buffer.allocUnsafe(size), at: 0 };
  for (let x = 0; x < items.length; x++) writeItem(w, items[x]!, bodies[x]!);
  return w.buf;
}

/** The hand-written bytes, or undefined when `msg` holds something `toBinary` must encode. */
export function encodeByHand(msg: GetRecommendationsResponse): Uint8Array | undefined {
  if (msg.$typeName !== "reco.v1.GetRecommendationsResponse" || (msg.$unknown?.length ?? 0) > 0)
    return undefined;
  const { userId, statusMessage, arm, stalenessMs, watermark, topCategories } = msg;
  if (typeof userId !== "string" || typeof statusMessage !== "string" || typeof arm !== "string")
    return undefined;
  if (!isSmall64(stalenessMs)) return undefined;
  let items = itemBytes.get(msg.items);
  if (items === undefined) {
    items = encodeItems(msg.items);
    if (items === undefined) return undefined;
    if (keepable.has(msg.items)) itemBytes.set(msg.items, items);
  }
  // Top categories: each { category = 1, interest = 2 } with its tag and length.
  const cats = new Array<number>(topCategories.length);
  let catsSize = 0;
  for (let x = 0; x < topCategories.length; x++) {
    const c = topCategories[x]!;
    if (c.$typeName !== "reco.v1.CategoryInterest" || (c.$unknown?.length ?? 0) > 0)
      return undefined;
    if (typeof c.category !== "string" || !isSmall64(c.interest)) return undefined;
    const interest = Number(c.interest);
    const body = strSize(c.category) + (interest === 0 ? 0 : 1 + varintSize(interest));
    cats[x] = body;
    catsSize += 1 + varintSize(body) + body;
  }
  // The watermark: a message field, written when present (even with both fields 0).
  let wmBody = -1;
  let seconds = 0;
  let nanos = 0;
  if (watermark !== undefined) {
    if (watermark.$typeName !== "google.protobuf.Timestamp") return undefined;
    if ((watermark.$unknown?.length ?? 0) > 0) return undefined;
    if (!isSmall64(watermark.seconds) || !isInt32(watermark.nanos)) return undefined;
    seconds = Number(watermark.seconds);
    nanos = watermark.nanos;
    wmBody =
      (seconds === 0 ? 0 : 1 + varintSize(seconds)) + (nanos === 0 ? 0 : 1 + varintSize(nanos));
  }
  const staleness = Number(stalenessMs);
  const size =
    strSize(userId) +
    items.length +
    catsSize +
    (wmBody < 0 ? 0 : 1 + varintSize(wmBody) + wmBody) +
    strSize(statusMessage) +
    (staleness === 0 ? 0 : 1 + varintSize(staleness)) +
    strSize(arm);
  const w: Writer = { buf: Buffer.allocUnsafe(size), at: 0 };
  writeStr(w, 0x0a, userId);
  w.buf.set(items, w.at);
  w.at += items.length;
  for (let x = 0; x < topCategories.length; x++) {
    const c = topCategories[x]!;
    w.buf[w.at++] = 0x1a;
    writeVarint(w, cats[x]!);
    writeStr(w, 0x0a, c.category);
    writeNum(w, 0x10, Number(c.interest));
  }
  if (wmBody >= 0) {
    w.buf[w.at++] = 0x22;
    writeVarint(w, wmBody);
    writeNum(w, 0x08, seconds);
    writeNum(w, 0x10, nanos);
  }
  writeStr(w, 0x2a, statusMessage);
  writeNum(w, 0x30, staleness);
  writeStr(w, 0x3a, arm);
  return w.at === size ? w.buf : undefined;
}
