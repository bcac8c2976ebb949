import { asyncScheduler, connect, filter, map, merge, type Observable } from "rxjs";
import { defineStage, port, type InputBatch, type StageContext } from "../../runtime/index.js";
import type { InputMessage } from "../host/index.js";
import { createSeenIds } from "./seen-ids.js";
import { EVENT_TYPES, parseJsonEvent, decodeProtobufEvent, isProtobuf } from "../contract/index.js";
import type { ParseSettings, ParseView } from "./parse-options.js";
import type { ParsedRecord } from "../contract/index.js";
import {
  IDLE_SUBJECT,
  markerSignedBy,
  readIdleMarker,
  type ConsumerView,
  type IdleMarker,
} from "../host/index.js";

export {
  IDLE_SIGNATURE_HEADER,
  IDLE_SUBJECT,
  readIdleMarker,
  signIdleMarker,
  type ConsumerView,
  type IdleMarker,
  type IdleOptions,
} from "../host/index.js";
export { decodeProtobufEvent } from "../contract/index.js";
export type * from "./parse-options.js";

/** A message parse dead-letters, and why. */
export interface DeadLetter {
  msg: InputMessage;
  reason: string;
}

/** What parse emits for a batch (its ports). */
interface ParseOutputs {
  user?: ParsedRecord[];
  items?: ParsedRecord[];
  progress?: number[];
  dlq?: DeadLetter[];
  broadcast?: number[];
  marker?: IdleMarker[];
  idle?: IdleApplied[];
}

/** An idle marker parse applied: its EVENTS sequence and the progress it moved event time to. */
export interface IdleApplied {
  s: number;
  progress: number;
}

/** The subject each event type must arrive on. */
const SUBJECT_OF: Readonly<Record<string, string>> = Object.fromEntries(
  EVENT_TYPES.map((t) => [t, `events.${t}`]),
);

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
export const parseStage = defineStage({
  name: "parse",
  input: port<InputMessage>(),
  ports: {
    /** Accepted events, to their user's partition and to their item's. */
    user: port<ParsedRecord>(),
    items: port<ParsedRecord>(),
    /** The event-time progress, whenever it moves. */
    progress: port<number>(),
    dlq: port<DeadLetter>(),
    /** "Tell every partition the progress": an empty hop to each. */
    broadcast: port<number>(),
    /** An idle marker to append to the input (signed there). */
    marker: port<IdleMarker>(),
    /**
     * An idle marker read back and applied (progress moved): to every user partition, where it
     * marks the input position at which event time jumped without an event.
     */
    idle: port<IdleApplied>(),
  },
  trigger: "processing-time",
  create(ctx: StageContext<ParseSettings>) {
    const opts = ctx.settings;
    const seen = createSeenIds(ctx.state.map<number>("seen"), opts.dedupeMaxIds); // id -> event time
    const clock = () => ctx.scheduler.now();
    const progressValue = ctx.state.value<number>("progress");
    let progress = Number(progressValue.get() ?? -1);
    let lastBroadcast = 0;
    // Not the restored progress: whether it reached every partition before a crash is unknown
    // (the snapshot may postdate the last broadcast), so a restarted parse broadcasts it again.
    let broadcastProgress = progress < 0 ? progress : -Infinity;
    const genres = opts.preset === "movies" ? opts.genres : undefined;
    const futureSkew = opts.maxFutureSkewMs ?? 3_600_000;
    const markerKey = opts.markerKey;

    // Idleness, in processing time (none of it is persisted: a restart waits a full timeout again).
    const idle = opts.idle !== undefined && opts.idle.timeoutMs > 0 ? opts.idle : undefined;
    const probeEveryMs = idle ? Math.min(1000, Math.max(50, Math.floor(idle.timeoutMs / 4))) : 0;
    let lastSeq = 0; // last input sequence handed over (the batches' position)
    let lastInputAt = clock();
    let lastEventAt = lastInputAt; // last accepted event ...
    let anchor = progress; // ... and the progress right after it
    let view: (ConsumerView & { requestedAt: number; receivedAt: number }) | undefined;
    let probing = false;
    let lastProbeAt = -Infinity;
    let lastMarkerAt = -Infinity;
    let markerInFlight = false;

    const slow = opts.slowBroadcast;
    /** Idle partitions still learn that event time moved on, so their windows can close. */
    const broadcast = (now: number): number[] | undefined => {
      if (progress === broadcastProgress || now - lastBroadcast < opts.broadcastEveryMs) return;
      if (slow && progress - broadcastProgress < slow.belowMs && now - lastBroadcast < slow.everyMs)
        return;
      lastBroadcast = now;
      broadcastProgress = progress;
      return [progress];
    };

    const advance = (to: number) => {
      progress = to;
      progressValue.set(progress);
      opts.badRatio?.progress?.(progress);
      seen.expireBefore(progress - opts.dedupeHorizonMs);
    };

    /** Decides one event: a record when accepted, nothing for a duplicate, else the reason. */
    const decide = (msg: InputMessage): ParsedRecord | string | undefined => {
      if (msg.data.length > opts.maxEventBytes) return "event_too_large";
      const r = isProtobuf(msg.headers) ? decodeProtobufEvent(msg.data) : parseJsonEvent(msg.data);
      if (!r.ok) return r.reason;
      const e = r.event;
      if (msg.subject !== SUBJECT_OF[e.t]) return "subject_mismatch:event_type";
      if (futureSkew > 0 && msg.time !== undefined && e.ts > msg.time + futureSkew)
        return "event_ts_in_future";
      // Remembered from when it arrived in event time, not from its own (possibly very late)
      // time: otherwise an event more than the horizon late was forgotten at once and a repeat
      // of it counted twice.
      if (!seen.add(e.id, Math.max(e.ts, progress))) {
        opts.counters?.duplicate(1);
        return undefined;
      }
      if (genres !== undefined && e.c === "") e.c = genres.get(e.i) ?? "";
      if (opts.preset === "movies" && e.t === "rating" && e.r >= 4) e.t = "purchase";
      opts.counters?.accepted(1);
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
      if (e.ts > progress) advance(e.ts);
      lastEventAt = lastInputAt;
      anchor = progress;
      return rec;
    };

    /** The batch's messages: events accepted, duplicates dropped, bad ones dead-lettered. */
    const parseBatch = ({ records }: InputBatch<InputMessage>): ParseOutputs => {
      const before = progress;
      const accepted: ParsedRecord[] = [];
      let dlq: DeadLetter[] | undefined;
      let idled: IdleApplied[] | undefined;
      // Processing time, read once: a batch is handled in one synchronous turn.
      const now = clock();
      for (const msg of records) {
        lastInputAt = now;
        lastSeq = msg.seq;
        const marker =
          msg.subject === IDLE_SUBJECT && msg.data.length <= 256 && !isProtobuf(msg.headers)
            ? readIdleMarker(msg.data)
            : undefined;
        // Not an event: outside the accounting of events (in = accepted + bad + duplicates).
        if (marker !== undefined && markerSignedBy(markerKey, msg)) {
          const applied = applyMarker(marker, msg.seq);
          if (applied !== undefined) (idled ??= []).push(applied);
          continue;
        }
        opts.counters?.received?.(1);
        // A marker the engine did not write (anyone who can publish to EVENTS could move event
        // time to year 9999 with one) is a bad message like any other.
        const r = marker !== undefined ? "idle_marker_unsigned" : decide(msg);
        if (typeof r === "string") {
          (dlq ??= []).push({ msg, reason: r });
          opts.counters?.bad(r);
        } else if (r !== undefined) accepted.push(r);
        opts.badRatio?.record(typeof r === "string");
      }
      const out: ParseOutputs = { user: accepted, items: accepted };
      if (dlq !== undefined) out.dlq = dlq;
      if (idled !== undefined) out.idle = idled;
      if (progress !== before) out.progress = [progress];
      const b = broadcast(now);
      if (b !== undefined) out.broadcast = b;
      return out;
    };

    /**
     * An idle marker read back from the input: progress moves if it is in place (IdleMarker).
     * Returns the marker as applied when progress moved.
     */
    const applyMarker = (m: IdleMarker, seq: number): IdleApplied | undefined => {
      markerInFlight = false;
      if (seq !== m.after + 1) {
        ctx.count("idle_stale");
        return;
      }
      ctx.count("idle_marker");
      if (m.progress <= progress) return;
      advance(m.progress);
      return { s: seq, progress };
    };

    /** Asks the server about the consumer; a marker when the input is idle (see above). */
    const idleMarker = (): IdleMarker | undefined => {
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
      // One marker at a time (its own sequence is the next one's `after`). The server might
      // have dropped it as a repeat of an id it holds: then the next one may go after a while.
      if (markerInFlight && now - lastMarkerAt < 2 * idle.timeoutMs) return;
      const v = view;
      // The answer must postdate the last input handled, and be recent: the server answered,
      // the connection is up (a heartbeat in effect, not the mere absence of messages).
      if (v === undefined || v.requestedAt < lastInputAt || now - v.receivedAt > 3 * probeEveryMs)
        return;
      // Caught up: nothing left at the server, everything delivered processed, and the client
      // pulling. A backlogged consumer fails here whatever the time.
      if (v.pending !== 0 || v.waiting === 0 || v.delivered > Math.max(lastSeq, v.ackFloor)) return;
      const to = anchor + (now - lastEventAt);
      if (to <= progress) return;
      lastMarkerAt = now;
      markerInFlight = true;
      return { progress: to, after: v.delivered };
    };

    /**
     * On the trigger: the last progress still reaches idle partitions (without it, their final
     * watermark depended on whether some later message happened to arrive after the broadcast
     * period), and a marker goes out when the whole input is idle.
     */
    const onTrigger = ({ position }: InputBatch<InputMessage>): ParseOutputs => {
      lastSeq = position.upTo;
      const out: ParseOutputs = {};
      const b = broadcast(clock());
      if (b !== undefined) out.broadcast = b;
      const m = idleMarker();
      if (m !== undefined) out.marker = [m];
      return out;
    };

    const onInput = (b$: Observable<InputBatch<InputMessage>>) =>
      b$.pipe(
        filter((b) => b.trigger === undefined),
        map(parseBatch),
      );
    const onTime = (b$: Observable<InputBatch<InputMessage>>) =>
      b$.pipe(
        filter((b) => b.trigger === "time"),
        map(onTrigger),
      );
    return {
      view: {
        get progress() {
          return progress;
        },
        get broadcastPending() {
          return progress !== broadcastProgress;
        },
      } satisfies ParseView,
      operator: (batches$) => batches$.pipe(connect((b$) => merge(onInput(b$), onTime(b$)))),
    };
  },
});

/** RxJS's async scheduler reading `now` from `clock` (tests' fake processing time). */
export function clockScheduler(clock: () => number): typeof asyncScheduler {
  return Object.assign(Object.create(asyncScheduler) as typeof asyncScheduler, { now: clock });
}
