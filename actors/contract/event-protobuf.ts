import { fromBinary } from "@bufbuild/protobuf";
import { ClickEventSchema, EventType as PbEventType } from "../../proto/gen/reco/v1/reco_pb.js";
import { normaliseEvent, type ParseResult } from "./event.js";

const PB_TYPES: Record<number, string> = {
  [PbEventType.VIEW]: "view",
  [PbEventType.CLICK]: "click",
  [PbEventType.CART]: "cart",
  [PbEventType.PURCHASE]: "purchase",
  [PbEventType.RATING]: "rating",
  [PbEventType.REMOVE_FROM_CART]: "remove_from_cart",
};

/** Decodes a protobuf ClickEvent into the JSON field names of the contract. */
export function decodeProtobufEvent(data: Uint8Array): ParseResult {
  let m;
  try {
    m = fromBinary(ClickEventSchema, data);
  } catch {
    return { ok: false, reason: "bad_protobuf" };
  }
  const type = PB_TYPES[m.eventType];
  if (m.eventType !== PbEventType.EVENT_TYPE_UNSPECIFIED && type === undefined)
    return { ok: false, reason: "invalid_field:event_type" };
  return normaliseEvent({
    event_id: m.eventId,
    event_type: type ?? "",
    event_ts: m.eventTs,
    user_id: m.userId,
    item_id: m.itemId,
    category_code: m.categoryCode,
    brand: m.brand,
    price: m.price,
    rating: m.rating,
    review_text: m.reviewText,
  });
}

/** Content-Type, whatever the case of the header name (publishers differ). */
export function isProtobuf(headers: Record<string, string>): boolean {
  // for-in, not Object.entries: no arrays per event (most events carry no header or one).
  for (const k in headers)
    if (k.length === 12 && k.toLowerCase() === "content-type")
      return headers[k]!.startsWith("application/protobuf");
  return false;
}
