import { Packr } from "msgpackr";
import type { ValueCodec } from "../../runtime/index.js";
import type { RatingRow } from "./als-matrix.js";
import { decodeStoredArray } from "./pack-rows.js";

/**
 * The stored form of a collaborative rating row (als-matrix.ts: `[user number, changed at,
 * item, value, item, value, ...]`) as MessagePack bytes (msgpackr, as the history's values:
 * history-bytes.ts) instead of JSON text.
 *
 * Why: every user with an event since the last snapshot has their row written again, and a row
 * read after its snapshot (the user's next event) is decoded again. On 20,000 rows of 1-60 pairs:
 * encoding 1.7 µs against JSON.stringify's 5.7 µs per row, decoding 1.3 against JSON.parse's
 * 2.4, 162 bytes against 271.
 * A value and an event time are float64 or an integer, the same numbers JSON.parse of their
 * printed form gave (-0 is written as 0, as JSON wrote it); item ids are UTF-8 (parse refuses lone
 * surrogates). A row stored as JSON text before still loads.
 */

// Plain arrays: a row decodes alone, with no shared record shapes.
const packr = new Packr({ useRecords: false });

export const decodeRatingRow = (stored: unknown): RatingRow =>
  decodeStoredArray(stored, "rating row") as RatingRow;

/** The codec of the collaborative stages' rating rows (collaborative-stage.ts `ratingRows`). */
export const ratingRowCodec: ValueCodec<RatingRow> = {
  encode: (row) => packr.pack(row),
  decode: decodeRatingRow,
};
