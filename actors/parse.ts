import { fromBinary } from "@bufbuild/protobuf";
import { ClickEventSchema, EventType as PbEventType } from "../proto/gen/reco/v1/reco_pb.js";
import type { InputMessage, StageHandler, StageOutput } from "./host.js";
import type { StageState } from "../state/index.js";
import {
  normaliseEvent,
  parseJsonEvent,
  type Interaction,
  type ParseResult,
  type Preset,
} from "./event.js";
import { partitionOf } from "./partition.js";
import { subjects } from "./subjects.js";

/** A parsed event on the hop to the next stages: the event, its input sequence and the progress before it. */
export interface ParsedRecord extends Interaction {
  /** Sequence of the event in the EVENTS stream: downstream drops records it has seen. */
  s: number;
  /** Event-time progress (max event time over all earlier accepted events), -1 at first. */
  wb: number;
}

export interface ParseOptions {
  partitions: number;
  preset: Preset;
  /** Seen ids are forgotten once their event time is this far behind the progress. */
  dedupeHorizonMs: number;
  /** And at most this many are kept (oldest first out). */
  dedupeMaxIds: number;
  maxEventBytes: number;
  /** Progress is broadcast to idle partitions at most this often (ms of processing time). */
  broadcastEveryMs: number;
  counters?: ParseCounters;
  clock?: () => number;
}

export interface ParseCounters {
  accepted(n: number): void;
  duplicate(n: number): void;
  bad(reason: string): void;
}

export interface ParseHandler extends StageHandler {
  readonly progress: number;
}

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

/**
 * parse: validate and normalise (DESIGN §2), drop duplicate event ids, route bad events to
 * reco.dlq.parse, and fan accepted events out by user (reco.parse.<p>) and by item (reco.items.<q>).
 * It is the single reader of EVENTS, so event-time progress is one deterministic number for the
 * whole input: lateness does not depend on the partition count.
 */
export function createParseHandler(
  state: StageState,
  out: StageOutput,
  opts: ParseOptions,
): ParseHandler {
  const seen = state.map<number>("seen"); // event id -> event time
  const clock = opts.clock ?? Date.now;
  let progress = Number(state.meta.progress ?? -1);
  let lastBroadcast = 0;
  let broadcastProgress = progress;
  const P = opts.partitions;

  const deadLetter = (msg: InputMessage, reason: string) => {
    out.raw(
      subjects.dlqParse,
      msg.data,
      {
        ...msg.headers,
        "Reco-Reason": reason,
        "Reco-Subject": msg.subject,
        "Reco-Seq": String(msg.seq),
      },
      `dlq.parse.${msg.seq}`,
    );
    opts.counters?.bad(reason);
  };

  const forget = () => {
    // Insertion order is event arrival order: expire from the front.
    const horizon = progress - opts.dedupeHorizonMs;
    for (const [id, ts] of seen.entries()) {
      if (seen.size > opts.dedupeMaxIds || ts < horizon) seen.delete(id);
      else break;
    }
  };

  const handler: ParseHandler = {
    get progress() {
      return progress;
    },
    handle(msg) {
      if (msg.data.length > opts.maxEventBytes) return deadLetter(msg, "event_too_large");
      const ct = msg.headers["Content-Type"] ?? msg.headers["content-type"] ?? "";
      const r = ct.startsWith("application/protobuf")
        ? decodeProtobufEvent(msg.data)
        : parseJsonEvent(msg.data);
      if (!r.ok) return deadLetter(msg, r.reason);
      const e = r.event;
      const subjectType = msg.subject.startsWith("events.") ? msg.subject.slice(7) : "";
      if (subjectType !== e.t) return deadLetter(msg, "subject_mismatch:event_type");
      if (seen.has(e.id)) {
        opts.counters?.duplicate(1);
        return;
      }
      seen.set(e.id, e.ts);
      if (opts.preset === "movies" && e.t === "rating" && e.r >= 4) e.t = "purchase";
      const rec: ParsedRecord = { ...e, s: msg.seq, wb: progress };
      out.emit(subjects.parse(partitionOf(e.u, P)), rec);
      out.emit(subjects.items(partitionOf(e.i, P)), rec);
      opts.counters?.accepted(1);
      if (e.ts > progress) {
        progress = e.ts;
        state.meta.progress = progress;
        out.setProgress(progress);
        forget();
      }
      const now = clock();
      if (progress !== broadcastProgress && now - lastBroadcast >= opts.broadcastEveryMs) {
        // Idle partitions still learn that event time moved on, so their windows can close.
        for (let p = 0; p < P; p++) {
          out.touch(subjects.parse(p));
          out.touch(subjects.items(p));
        }
        lastBroadcast = now;
        broadcastProgress = progress;
      }
    },
  };
  out.setProgress(progress);
  return handler;
}
