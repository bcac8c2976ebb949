import { createHmac, timingSafeEqual } from "node:crypto";
import { fromBinary } from "@bufbuild/protobuf";
import { ClickEventSchema, EventType as PbEventType } from "../proto/gen/reco/v1/reco_pb.js";
import type { InputMessage, StageHandler, StageOutput } from "./host.js";
import type { StageState } from "../state/index.js";
import type { BadRatioMonitor } from "./bad-ratio.js";
import { createSeenIds } from "./seen-ids.js";
import {
  EVENT_TYPES,
  normaliseEvent,
  parseJsonEvent,
  type Interaction,
  type ParseResult,
  type Preset,
} from "./event.js";
import { partitionOf } from "./partition.js";
import { deadLetterHeaders } from "./dead-letter.js";
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
  /**
   * MAX_FUTURE_SKEW_MS: an event whose time is more than this ahead of when JetStream stored it
   * is dead-lettered as `event_ts_in_future` (one event dated 9999 would otherwise make every
   * later event late, for good: it stays in EVENTS). The stored time is part of the log, so a
   * replay decides the same. 0: off. Default 1 h.
   */
  maxFutureSkewMs?: number;
  /** Progress is broadcast to idle partitions at most this often (ms of processing time). */
  broadcastEveryMs: number;
  counters?: ParseCounters;
  /** Event time moves on while the whole input is quiet (DESIGN §3.2); absent: never. */
  idle?: IdleOptions;
  /**
   * The engine's key for idle markers (connectors/nats/engine-key.ts): parse signs the markers
   * it writes, and a message on {@link IDLE_SUBJECT} counts as a marker only with a valid
   * signature; one without is dead-lettered as `idle_marker_unsigned`. Absent: parse writes no
   * markers and trusts none.
   */
  markerKey?: Uint8Array;
  /**
   * The movies preset's catalogue: movie id -> category (first genre of MovieLens `movies.csv`,
   * lowercased; see {@link loadMoviesCatalog}). An event without `category_code` gets its
   * movie's category. Used only with preset `movies`.
   */
  genres?: ReadonlyMap<string, string>;
  /**
   * The bad-event ratio alert (actors/bad-ratio.ts), told of every input message, good or bad.
   * Created outside the handler (createBadRatioAlert in actors/parse-metrics.ts), so an alert
   * survives a restart of the parse actor; whoever reads the alert re-evaluates it, so a quiet
   * minute clears it. If it has `progress` (createBadRatioAlert's does: the gauge
   * reco_event_time_progress_ms), it is told the event-time progress whenever it moves, and at
   * start the progress restored from the snapshot.
   */
  badRatio?: BadRatioMonitor & { progress?(ms: number): void };
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

/**
 * Subject of parse's idle markers in EVENTS. Publishers never use it: an event published here is
 * dead-lettered as `subject_mismatch:event_type` like any event on a subject not its type's, and
 * a marker without the engine's signature ({@link IDLE_SIGNATURE_HEADER}) as
 * `idle_marker_unsigned`.
 */
export const IDLE_SUBJECT = "events._idle";

/**
 * An idle marker, the body of a message on {@link IDLE_SUBJECT}: "event-time progress is at least
 * `progress`", decided by parse when the message at stream sequence `after` was the last of the
 * stream. It counts only at sequence `after + 1`: anything stored in between (an event that
 * raced the decision) makes it stale, and it is ignored. That is a function of the log alone,
 * so a replay reproduces the same progress at the same input position.
 */
export interface IdleMarker {
  progress: number;
  after: number;
}

/** The server's view of parse's consumer (`jsm.consumers.info`), on which idleness is decided. */
export interface ConsumerView {
  /** Messages of the stream not yet delivered to the consumer (`num_pending`). */
  pending: number;
  /** Last stream sequence delivered to the client (`delivered.stream_seq`). */
  delivered: number;
  /** Last stream sequence acknowledged (`ack_floor.stream_seq`; the host acks at snapshots). */
  ackFloor: number;
  /** Pull requests waiting at the server (`num_waiting`): above 0 while the client is pulling. */
  waiting: number;
}

export interface IdleOptions {
  /**
   * IDLE_TIMEOUT_MS: processing time without a new accepted event, while the consumer is caught
   * up, before event time moves on; and the least time between two markers. 0: never.
   */
  timeoutMs: number;
  /** Asks the server about parse's consumer (connectors/nats/source.ts consumerProbe). */
  probe(): Promise<ConsumerView>;
}

/** Header of an idle marker carrying its HMAC-SHA256 (base64url) under the engine's key. */
export const IDLE_SIGNATURE_HEADER = "Reco-Idle-Sig";

/** The signature of a marker's bytes under `key`. */
export function signIdleMarker(key: Uint8Array, data: Uint8Array): string {
  return createHmac("sha256", key).update(data).digest("base64url");
}

function signedBy(key: Uint8Array | undefined, msg: InputMessage): boolean {
  const sig = msg.headers[IDLE_SIGNATURE_HEADER];
  if (key === undefined || sig === undefined) return false;
  const want = Buffer.from(signIdleMarker(key, msg.data));
  const got = Buffer.from(sig);
  return got.length === want.length && timingSafeEqual(got, want);
}

/** Reads an idle marker; undefined when the bytes are not exactly one (then it is an event). */
export function readIdleMarker(data: Uint8Array): IdleMarker | undefined {
  let v: unknown;
  try {
    v = JSON.parse(new TextDecoder().decode(data));
  } catch {
    return undefined;
  }
  if (typeof v !== "object" || v === null || Array.isArray(v)) return undefined;
  const o = v as Record<string, unknown>;
  if (Object.keys(o).length !== 2) return undefined;
  const { progress, after } = o;
  if (!Number.isSafeInteger(progress) || !Number.isSafeInteger(after)) return undefined;
  if ((progress as number) < 0 || (progress as number) > 8.64e15 || (after as number) < 0)
    return undefined;
  return { progress: progress as number, after: after as number };
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
  // for-in, not Object.entries: no arrays per event (most events carry no header or one).
  for (const k in headers)
    if (k.length === 12 && k.toLowerCase() === "content-type")
      return headers[k]!.startsWith("application/protobuf");
  return false;
}

/** The subject each event type must arrive on. */
const SUBJECT_OF: Readonly<Record<string, string>> = Object.fromEntries(
  EVENT_TYPES.map((t) => [t, `events.${t}`]),
);

const enc = new TextEncoder();

/**
 * parse: validate and normalise (DESIGN §2), drop duplicate event ids, route bad events to
 * reco.dlq.parse, and fan accepted events out by user (reco.parse.<p>) and by item (reco.items.<q>).
 * It is the single reader of EVENTS, so event-time progress is one deterministic number for the
 * whole input: lateness does not depend on the partition count.
 *
 * Idleness (DESIGN §3.2). Progress is broadcast to every partition, so a partition without
 * records never holds its watermark back. When the whole input goes quiet, parse moves event
 * time on itself, so the last windows still close: once the server says its consumer is caught
 * up (nothing pending, everything delivered processed, a pull waiting, answered within the last
 * few probes) and no event was accepted for `idle.timeoutMs` of processing time, it appends an
 * idle marker to EVENTS with progress = the progress at the last event + the processing time
 * since (event time follows wall time while idle), at most every `idle.timeoutMs`. The progress
 * moves when parse reads the marker back, so a replay moves it at the same input position.
 * A backlogged consumer never qualifies, however slowly it is processing.
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
  // Not the restored progress: whether it reached every partition before a crash is unknown (the
  // snapshot may postdate the last broadcast), so a restarted parse broadcasts it once again.
  let broadcastProgress = progress < 0 ? progress : -Infinity;
  const P = opts.partitions;
  const genres = opts.preset === "movies" ? opts.genres : undefined;
  const futureSkew = opts.maxFutureSkewMs ?? 3_600_000;
  const markerKey = opts.markerKey;

  // Idleness, in processing time (none of it is persisted: a restart waits a full timeout again).
  const idle = opts.idle !== undefined && opts.idle.timeoutMs > 0 ? opts.idle : undefined;
  const probeEveryMs = idle ? Math.min(1000, Math.max(50, Math.floor(idle.timeoutMs / 4))) : 0;
  let lastSeq = Number(state.meta.seq ?? 0); // last input sequence handled (the host's snapshot)
  let lastInputAt = clock();
  let lastEventAt = lastInputAt; // last accepted event ...
  let anchor = progress; // ... and the progress right after it
  let view: (ConsumerView & { requestedAt: number; receivedAt: number }) | undefined;
  let probing = false;
  let lastProbeAt = -Infinity;
  let lastMarkerAt = -Infinity;
  let markerInFlight = false;

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

  const advance = (to: number) => {
    progress = to;
    state.meta.progress = progress;
    out.setProgress(progress);
    opts.badRatio?.progress?.(progress);
    seen.expireBefore(progress - opts.dedupeHorizonMs);
  };

  /** Decides one message: undefined when accepted or a duplicate, else the dead-letter reason. */
  const decide = (msg: InputMessage): string | undefined => {
    if (msg.data.length > opts.maxEventBytes) return "event_too_large";
    const r = isProtobuf(msg.headers) ? decodeProtobufEvent(msg.data) : parseJsonEvent(msg.data);
    if (!r.ok) return r.reason;
    const e = r.event;
    if (msg.subject !== SUBJECT_OF[e.t]) return "subject_mismatch:event_type";
    if (futureSkew > 0 && msg.time !== undefined && e.ts > msg.time + futureSkew)
      return "event_ts_in_future";
    // Remembered from when it arrived in event time, not from its own (possibly very late) time:
    // otherwise an event more than the horizon late was forgotten at once and a repeat of it
    // counted twice.
    if (!seen.add(e.id, Math.max(e.ts, progress))) {
      opts.counters?.duplicate(1);
      return undefined;
    }
    if (genres !== undefined && e.c === "") e.c = genres.get(e.i) ?? "";
    if (opts.preset === "movies" && e.t === "rating" && e.r >= 4) e.t = "purchase";
    // A literal, not `{ ...e, s, wb }`: one hidden class for every record (spread made many,
    // and was most of parse's own time); the key order is the contract's (hop rows follow it).
    const rec: ParsedRecord = {
      id: e.id,
      t: e.t,
      ts: e.ts,
      u: e.u,
      i: e.i,
      c: e.c,
      b: e.b,
      pr: e.pr,
      r: e.r,
      s: msg.seq,
      wb: progress,
    };
    // An upper bound of the record's JSON: at most 6 bytes per UTF-16 unit (a control character
    // is escaped as \u00XX), 300 for the rest. The host cuts a hop before it nears max_payload.
    const bytes = 300 + 6 * (e.u.length + e.i.length + e.c.length + e.b.length);
    out.emit(subjects.parse(partitionOf(e.u, P)), rec, bytes);
    out.emit(subjects.items(partitionOf(e.i, P)), rec, bytes);
    opts.counters?.accepted(1);
    if (e.ts > progress) advance(e.ts);
    lastEventAt = lastInputAt;
    anchor = progress;
    return undefined;
  };

  /** An idle marker read back from EVENTS: progress moves if it is in place (see IdleMarker). */
  const applyMarker = (m: IdleMarker, seq: number) => {
    markerInFlight = false;
    if (seq !== m.after + 1) {
      out.count("idle_stale");
      return;
    }
    out.count("idle_marker");
    if (m.progress > progress) advance(m.progress);
  };

  /** On tick: asks the server about the consumer, and appends a marker when the input is idle. */
  const idleTick = () => {
    if (idle === undefined || markerKey === undefined || progress < 0) return;
    const now = clock();
    // Busy: no need to ask the server.
    if (now - lastEventAt < idle.timeoutMs / 2) return;
    if (!probing && now - lastProbeAt >= probeEveryMs) {
      probing = true;
      lastProbeAt = now;
      const requestedAt = now;
      idle.probe().then(
        (v) => {
          view = { ...v, requestedAt, receivedAt: clock() };
          probing = false;
        },
        () => {
          view = undefined; // no answer: no sign of life
          probing = false;
        },
      );
    }
    if (now - lastEventAt < idle.timeoutMs || now - lastMarkerAt < idle.timeoutMs) return;
    // One marker at a time (its own sequence is the next one's `after`). The server might have
    // dropped it as a repeat of an id it holds: then the next one may go after a while.
    if (markerInFlight && now - lastMarkerAt < 2 * idle.timeoutMs) return;
    const v = view;
    // The answer must postdate the last input handled, and be recent: the server answered, the
    // connection is up (a heartbeat in effect, not the mere absence of messages).
    if (v === undefined || v.requestedAt < lastInputAt || now - v.receivedAt > 3 * probeEveryMs)
      return;
    // Caught up: nothing left at the server, everything delivered processed, and the client
    // pulling. A backlogged consumer fails here whatever the time.
    if (v.pending !== 0 || v.waiting === 0 || v.delivered > Math.max(lastSeq, v.ackFloor)) return;
    const to = anchor + (now - lastEventAt);
    if (to <= progress) return;
    const marker: IdleMarker = { progress: to, after: v.delivered };
    const data = enc.encode(JSON.stringify(marker));
    const headers = { [IDLE_SIGNATURE_HEADER]: signIdleMarker(markerKey, data) };
    out.raw(IDLE_SUBJECT, data, headers, `idle.${v.delivered}`);
    lastMarkerAt = now;
    markerInFlight = true;
  };

  const handler: ParseHandler = {
    get progress() {
      return progress;
    },
    handle(msg) {
      lastInputAt = clock();
      lastSeq = msg.seq;
      const marker =
        msg.subject === IDLE_SUBJECT && msg.data.length <= 256 && !isProtobuf(msg.headers)
          ? readIdleMarker(msg.data)
          : undefined;
      // Not an event: outside the accounting of events (in = accepted + bad + duplicates).
      if (marker !== undefined && signedBy(markerKey, msg)) {
        applyMarker(marker, msg.seq);
        broadcast();
        return;
      }
      opts.counters?.received?.(1);
      // A marker the engine did not write (anyone who can publish to EVENTS could move event
      // time to year 9999 with one) is a bad message like any other.
      const reason = marker !== undefined ? "idle_marker_unsigned" : decide(msg);
      if (reason !== undefined) deadLetter(msg, reason);
      opts.badRatio?.record(reason !== undefined);
      broadcast();
    },
    tick() {
      // When input stops, the last progress still reaches the idle partitions: without this,
      // their final watermark depended on whether some later message (a bad one, say) happened
      // to arrive after broadcastEveryMs.
      broadcast();
      idleTick();
    },
  };
  out.setProgress(progress);
  if (progress >= 0) opts.badRatio?.progress?.(progress);
  return handler;
}
