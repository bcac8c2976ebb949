import { toBinary } from "@bufbuild/protobuf";
import {
  GetRecommendationsResponseSchema,
  type GetRecommendationsResponse,
  type RecommendedItem,
} from "../../proto/gen/reco/v1/reco_pb.js";

/**
 * GetRecommendations' response bytes with its items encoded once per answer. A memoised answer
 * (actors/serving/recommender-memo.ts) is served again and again with the same items; encoding them was
 * most of its serving cost (protobuf-es `toBinary` of ten items, ~2.8 s of 6.8 s of the app's
 * GetRecommendations handler in a profile of bench step 4, ~20 µs a call). Here the items'
 * bytes (field 2) are kept per items array that toRecommendationsResponse built, and each call
 * encodes only the rest (user id, top categories, watermark, ...) and puts the kept items
 * between field 1 and field 3: the same bytes as `toBinary` of the whole message, which writes
 * fields in number order. Only arrays marked by `keepItemBytes` are kept: they are built from an
 * answer's items and never changed after (nothing mutates an answer: the memo hands the same
 * one to every caller); any other message is encoded as before.
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
  if (msg.items.length === 0 || !keepable.has(msg.items) || (msg.$unknown?.length ?? 0) > 0)
    return toBinary(GetRecommendationsResponseSchema, msg);
  let items = itemBytes.get(msg.items);
  if (items === undefined) {
    items = toBinary(GetRecommendationsResponseSchema, {
      $typeName: "reco.v1.GetRecommendationsResponse",
      userId: "",
      items: msg.items,
      topCategories: [],
      statusMessage: "",
      stalenessMs: 0n,
      arm: "",
    });
    itemBytes.set(msg.items, items);
  }
  const rest = toBinary(GetRecommendationsResponseSchema, { ...msg, items: [] });
  // Field 1 (user_id, tag 0x0a) comes first when set: its tag, length varint and bytes.
  let head = 0;
  if (rest.length > 0 && rest[0] === 0x0a) {
    let len = 0;
    let shift = 0;
    let at = 1;
    for (;;) {
      const b = rest[at++]!;
      len += (b & 0x7f) * 2 ** shift;
      shift += 7;
      if (b < 0x80) break;
    }
    head = at + len;
  }
  const out = Buffer.allocUnsafe(rest.length + items.length);
  out.set(rest.subarray(0, head), 0);
  out.set(items, head);
  out.set(rest.subarray(head), head + items.length);
  return out;
}
