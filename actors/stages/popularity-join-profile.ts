import { Packr } from "msgpackr";
import type { ValueCodec } from "../../runtime/index.js";
import type { ProfileRecord } from "./interest-ranking.js";

/**
 * The stored form of popularity-join's per-user profile: MessagePack bytes (msgpackr, the hops'
 * codec: hop-binary.ts) of the tuple [u, top, pur, wm], instead of the profile's JSON text.
 *
 * Why: popularity-join holds one profile per user, nearly all of them cold (bytes in
 * state/cold-index.ts), and it was the largest stage of cold state at 1M users in bench step 7
 * (101 MiB: a JSON text of ~70 B for a user with one category, its field names and a 13-digit
 * progress as text). As a tuple the names go, the progress is 9 bytes, a category pair 3 plus
 * the name: ~35 B. MessagePack keeps doubles bit for bit and ids as UTF-8 (parse refuses lone
 * surrogates), so a decoded profile is what JSON.parse of its text gave.
 * A profile stored as JSON text (snapshots from before this codec) is still read.
 */

// Plain arrays: a value decodes alone, with no shared record shapes.
const packr = new Packr({ useRecords: false });

export function encodeProfile(p: ProfileRecord): Uint8Array {
  return packr.pack([p.u, p.top, p.pur, p.wm]);
}

export function decodeProfile(stored: unknown): ProfileRecord {
  if (typeof stored === "string") return JSON.parse(stored) as ProfileRecord;
  if (!(stored instanceof Uint8Array)) return stored as ProfileRecord;
  const v = packr.unpack(stored) as unknown;
  if (!Array.isArray(v) || v.length !== 4)
    throw new Error("popularity-join profile: unknown stored form");
  const [u, top, pur, wm] = v as [string, [string, number][], [string, number][], number];
  return { u, top, pur, wm };
}

/** The codec of popularity-join's "profile" map (state/stage-state.ts `codec`). */
export const profileCodec: ValueCodec<ProfileRecord> = {
  encode: encodeProfile,
  decode: decodeProfile,
};
