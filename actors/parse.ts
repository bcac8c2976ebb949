import { fromBinary } from "@bufbuild/protobuf";
import { ClickEventSchema, EventType as PbEventType } from "../proto/gen/reco/v1/reco_pb.js";
import type { InputMessage, StageHandler, StageOutput } from "./host.js";
import type { StageState } from "../state/index.js";
import type { BadRatioMonitor } from "./bad-ratio.js";
import { createSeenIds } from "./seen-ids.js";
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
  /** And at most this many are kept (oldest event time first out, ties by id). */
  dedupeMaxIds: number;
  maxEventBytes: number;
  /** Progress is broadcast to idle partitions at most this often (ms of processing time). */
  broadcastEveryMs: number;
  counters?: ParseCounters;
  /**
   * The bad-event ratio alert (actors/bad-ratio.ts), told of every input message, good or bad.
   * Created outside the handler (createBadRatioAlert in actors/parse-metrics.ts), so an alert
   * survives a restart of the parse actor; whoever reads the alert re-evaluates it, so a quiet
   * minute clears it.
   */
  badRatio?: BadRatioMonitor;
  clock?: () => number;
}

/**
 * The accounting of parse (issue 5). Every input message parse handles is counted once by
 * `received` and, unless `handle` throws, once by exactly one of `accepted`, `duplicate` or
 * `bad`, so for parse:
 *
 *     in = accepted + dead-lettered + duplicates
 *
 * (reco_events_in_total = reco_events_accepted_total + sum(reco_events_dead_lettered_total)
 * + reco_events_duplicate_total). A `handle` that throws leaves `in` ahead by one: such an
 * attempt is a parse failure (reco_stage_errors_total{stage="parse"}), and a message that fails
 * `MAX_ATTEMPTS` times goes to reco.dlq.poison (reco_dlq_poison_total) without reaching parse
 * again. After a restart parse replays from its snapshot and the Prometheus counters count the
 * replayed messages again, in every term alike, so the identity still holds over the life of a
 * process; counts kept in the snapshot (StageOutput.count, reco_stage_count) are exact.
 *
 * Late events are not a fourth outcome of parse: lateness is decided downstream, per path, and
 * a late event has already been counted as accepted here. On the user path every accepted event
 * reaches exactly one watermark partition, so accepted = on time + reco_events_late_total{stage=
 * "watermark"}, and the "in = accepted + dead-lettered + duplicates + late" reads, with
 * accepted meaning "accepted and on time on the user path":
 *
 *     in = (accepted − late{watermark}) + late{watermark} + dead-lettered + duplicates
 *
 * The item path decides lateness per consumer (trending counts views and clicks once per window
 * kind they are late for; popularity counts purchases beyond its 7-day horizon), so its late
 * counts are subsets of accepted, not terms of this sum.
 */
export interface ParseCounters {
  /** An input message reached parse (before any decision). */
  received?(n: number): void;
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

/** Content-Type, whatever the case of the header name (publishers differ). */
function isProtobuf(headers: Record<string, string>): boolean {
  for (const [k, v] of Object.entries(headers))
    if (k.toLowerCase() === "content-type") return v.startsWith("application/protobuf");
  return false;
}

/**
 * The original headers as carried into the dead letter. JetStream acts on publish headers such as
 * `Nats-Expected-Stream: EVENTS` or `Nats-Expected-Last-Sequence`: copied as they are, they would
 * make the dead letter's own publish fail, and parse would fail at every snapshot on one bad
 * event. They are kept under `Reco-Orig-<name>` instead. `Nats-Msg-Id` stays: the publisher
 * replaces it with the dead letter's own id.
 */
function deadLetterHeaders(headers: Record<string, string>): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [k, v] of Object.entries(headers)) {
    const lower = k.toLowerCase();
    if (lower.startsWith("nats-") && lower !== "nats-msg-id") out[`Reco-Orig-${k}`] = v;
    else out[k] = v;
  }
  return out;
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
  const seen = createSeenIds(state.map<number>("seen"), opts.dedupeMaxIds); // event id -> event time
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
        ...deadLetterHeaders(msg.headers),
        "Reco-Reason": reason,
        "Reco-Subject": msg.subject,
        "Reco-Seq": String(msg.seq),
      },
      `dlq.parse.${msg.seq}`,
    );
    opts.counters?.bad(reason);
  };

  /** Idle partitions still learn that event time moved on, so their windows can close. */
  const broadcast = () => {
    const now = clock();
    if (progress === broadcastProgress || now - lastBroadcast < opts.broadcastEveryMs) return;
    for (let p = 0; p < P; p++) {
      out.touch(subjects.parse(p));
      out.touch(subjects.items(p));
    }
    lastBroadcast = now;
    broadcastProgress = progress;
  };

  /** Decides one message: undefined when accepted or a duplicate, else the dead-letter reason. */
  const decide = (msg: InputMessage): string | undefined => {
    if (msg.data.length > opts.maxEventBytes) return "event_too_large";
    const r = isProtobuf(msg.headers) ? decodeProtobufEvent(msg.data) : parseJsonEvent(msg.data);
    if (!r.ok) return r.reason;
    const e = r.event;
    const subjectType = msg.subject.startsWith("events.") ? msg.subject.slice(7) : "";
    if (subjectType !== e.t) return "subject_mismatch:event_type";
    if (seen.has(e.id)) {
      opts.counters?.duplicate(1);
      return undefined;
    }
    // Remembered from when it arrived in event time, not from its own (possibly very late) time:
    // otherwise an event more than the horizon late was forgotten at once and a repeat of it
    // counted twice.
    seen.add(e.id, Math.max(e.ts, progress));
    if (opts.preset === "movies" && e.t === "rating" && e.r >= 4) e.t = "purchase";
    const rec: ParsedRecord = { ...e, s: msg.seq, wb: progress };
    out.emit(subjects.parse(partitionOf(e.u, P)), rec);
    out.emit(subjects.items(partitionOf(e.i, P)), rec);
    opts.counters?.accepted(1);
    if (e.ts > progress) {
      progress = e.ts;
      state.meta.progress = progress;
      out.setProgress(progress);
      seen.expireBefore(progress - opts.dedupeHorizonMs);
    }
    return undefined;
  };

  const handler: ParseHandler = {
    get progress() {
      return progress;
    },
    handle(msg) {
      opts.counters?.received?.(1);
      const reason = decide(msg);
      if (reason !== undefined) deadLetter(msg, reason);
      opts.badRatio?.record(reason !== undefined);
      broadcast();
    },
    tick() {
      // When input stops, the last progress still reaches the idle partitions: without this,
      // their final watermark depended on whether some later message (a bad one, say) happened
      // to arrive after broadcastEveryMs.
      broadcast();
    },
  };
  out.setProgress(progress);
  return handler;
}
