import { Packr } from "msgpackr";
import type { ValueCodec } from "../../runtime/index.js";
import type { UserHistory } from "./history.js";
import { decodeStoredArray, mapRows, PackRows } from "./pack-rows.js";

/**
 * The stored form of the history stage's per-user value (history.ts: the user's remembered items
 * as entries [item, [score, ts, weight, type, times, done]]) as MessagePack bytes (msgpackr, the
 * hops' codec: hop-binary.ts; the covisit stage's user value uses it too: user-value-bytes.ts)
 * instead of JSON text.
 *
 * Why: the history stage holds one value per user, nearly all cold (bytes in
 * state/cold-index.ts): 77 MiB at 1M users in bench step 7, ~45 B of JSON text for a user with
 * one item (a 13-digit event time printed twice, a decayed score as up to 17 digits). As
 * MessagePack an event time or a double is 9 bytes and an item's overhead ~5: ~30 B.
 * MessagePack keeps doubles bit for bit (the same bits JSON.parse of their printed form gave),
 * writes -0 as 0 as JSON did, and ids as UTF-8 (parse refuses lone surrogates). A value decodes
 * to entries, as a text map's JSON text did; a value stored as JSON text before still loads.
 */

// Plain arrays: a value decodes alone, with no shared record shapes.
const packr = new Packr({ useRecords: false });

const rows = new PackRows(2);

export function encodeHistory(v: UserHistory): Uint8Array {
  if (!(v instanceof Map)) return packr.pack(v);
  // The bytes of `[...v]`, without allocating its entries (pack-rows.ts).
  try {
    return packr.pack(mapRows(rows, v));
  } finally {
    rows.clear();
  }
}

export function decodeHistory(stored: unknown): UserHistory {
  return decodeStoredArray(stored, "history") as UserHistory;
}

/** The codec of the history stage's "users" map (state/stage-state.ts `codec`). */
export const historyCodec: ValueCodec<UserHistory> = {
  encode: encodeHistory,
  decode: decodeHistory,
};
