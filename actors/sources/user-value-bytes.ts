import { Packr } from "msgpackr";
import type { ValueCodec } from "../../runtime/index.js";
import { UserItems, type UserHistory } from "./history.js";
import { RecentItems } from "./recent-items.js";
import type { UserValue } from "./user-stores.js";
import { mapRows, PackRows } from "./pack-rows.js";

/**
 * The stored form of the covisit stage's per-user value (user-stores.ts: co-visitation's recent
 * items, and in state written while the prequential scorer ran in that stage its history of the
 * user) as MessagePack bytes (msgpackr, which
 * the hops use too: hop-binary.ts) instead of JSON text.
 *
 * Why: every user who had an event since the last snapshot has this value written again, and its
 * JSON text was the largest text of step 2's snapshots after the neighbour lists (JSON.stringify
 * of it ~7% of the covisit stage's CPU in bench/sources-micro.ts, most of it printing the
 * history's decayed doubles). MessagePack copies the doubles as float64 (the same bits come
 * back, as JSON.parse of their printed form gave) and, like JSON, writes -0 as 0. Ids are UTF-8:
 * parse never accepts an id with a lone surrogate (event.ts), so every id comes back as it was.
 * A value is what JSON.parse of its text gave: `{ r, h }` with the history as entries, or a bare
 * recent list; only a decoded history is a UserItems (a Map) at once, as the readers use it.
 * A value stored before this codec (JSON text) is still read.
 */

type Recent = NonNullable<UserValue["r"]>;
/** Recent items as stored (arrays), not co-visitation's live form. */
type StoredRecent = Exclude<Recent, RecentItems>;
/** A stored value: `{ r, h }`, or a bare recent list (user-stores.ts reads both). */
export type StoredUserValue = UserValue | StoredRecent;

// Plain MessagePack maps and arrays: a value decodes alone, with no shared record shapes.
const packr = new Packr({ useRecords: false });

// Reused rows (pack-rows.ts): the bytes of `[...h]` and `toJSON()`, without allocating them.
const historyRows = new PackRows(2);
const recentRows = new PackRows(4);

const entries = (h: UserHistory) => (h instanceof Map ? mapRows(historyRows, h) : h);

/** Recent items as stored: co-visitation's live form (recent-items.ts) as its arrays. */
const stored = (r: Recent) => {
  if (!(r instanceof RecentItems)) return r;
  for (let x = 0; x < r.size; x++) r.entry(x, recentRows.row(x));
  return recentRows.end(r.size);
};

export function encodeUserValue(v: StoredUserValue | RecentItems): Uint8Array {
  try {
    if (Array.isArray(v) || v instanceof RecentItems) return packr.pack(stored(v));
    // Only the parts the value has (an absent part is not written as a nil).
    const out: { r?: unknown; h?: unknown } = {};
    if (v.r !== undefined) out.r = stored(v.r);
    if (v.h !== undefined) out.h = entries(v.h);
    return packr.pack(out);
  } finally {
    historyRows.clear();
    recentRows.clear();
  }
}

export function decodeUserValue(stored: unknown): StoredUserValue {
  if (typeof stored === "string") return JSON.parse(stored) as StoredUserValue;
  if (!(stored instanceof Uint8Array)) return stored as StoredUserValue;
  let v: unknown;
  try {
    v = packr.unpack(stored);
  } catch (err) {
    throw new Error(`covisit user value: unknown stored form (${(err as Error).message})`);
  }
  if (Array.isArray(v)) return v as StoredRecent;
  if (v === null || typeof v !== "object")
    throw new Error(`covisit user value: unknown stored form (${typeof v})`);
  const o = v as { r?: Recent; h?: ConstructorParameters<typeof UserItems>[0] };
  const out: UserValue = {};
  if (o.r !== undefined) out.r = o.r;
  if (o.h !== undefined) out.h = new UserItems(o.h);
  return out;
}

/** The codec of the covisit stage's "recent" map (state/stage-state.ts `codec`). */
export const userValueCodec: ValueCodec<StoredUserValue | RecentItems> = {
  encode: encodeUserValue,
  decode: decodeUserValue,
};
