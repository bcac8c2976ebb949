import { DeliverPolicy, type JetStreamManager, type NatsConnection } from "nats";
import { setTimeout as sleep } from "node:timers/promises";
import { consumerInfos, EVENTS_STREAM } from "../../connectors/nats/streams.js";
import { STREAMS } from "../../connectors/nats/topology.js";

/**
 * What the engine made of a replay, asked of the engine's own streams: late records (reco.late)
 * and dead letters (reco.dlq.*) published after the replay started, once the engine has caught
 * up with the replayed events. A replay only knows what it sent; whether an event was on time is
 * the engine's judgement, so it is read back rather than guessed.
 */
export interface EngineReport {
  /** False when the engine did not catch up in time (or no engine reads EVENTS). */
  caughtUp: boolean;
  /** Why the counts are missing or partial, when `caughtUp` is false. */
  note?: string;
  /**
   * Set when the wait ended because nothing will come: the engine stopped reading events, or NATS
   * stopped answering. `reco replay` then exits non-zero.
   */
  stopped?: boolean;
  /** Late records by reason (`behind_watermark:user`, `:1h`, `:24h`, `:popularity`). */
  late: Record<string, number>;
  /** Dead letters by reason (`bad_json`, `missing_field:user_id`, …, and poison). */
  dead: Record<string, number>;
  /** How long the engine took to catch up after the last event was sent (ms). */
  waitedMs: number;
  /**
   * Events the engine dropped as duplicates (same event_id seen before, however long ago), from
   * its /metrics; undefined when the metrics endpoint did not answer.
   */
  duplicates?: number;
}

/**
 * The last sequences of the late and dead-letter streams before a replay (0: none yet), and the
 * engine's duplicate count when its metrics answer.
 */
export interface EngineMarks {
  late: number;
  dlq: number;
  duplicates: number | undefined;
  metricsUrl: string | undefined;
}

export async function markEngineStreams(
  jsm: JetStreamManager,
  metricsUrl?: string,
): Promise<EngineMarks> {
  return {
    late: await lastSeq(jsm, STREAMS.late),
    dlq: await lastSeq(jsm, STREAMS.dlq),
    duplicates: metricsUrl !== undefined ? await engineDuplicates(metricsUrl) : undefined,
    metricsUrl,
  };
}

/** reco_events_duplicate_total from an engine's /metrics; undefined when it does not answer. */
async function engineDuplicates(url: string): Promise<number | undefined> {
  try {
    const res = await fetch(url, { signal: AbortSignal.timeout(2_000) });
    if (!res.ok) return undefined;
    const m = /^reco_events_duplicate_total (\S+)$/m.exec(await res.text());
    return m ? Number(m[1]) : undefined;
  } catch {
    return undefined;
  }
}

export interface AwaitEngineOptions {
  /** The EVENTS sequence of the last replayed event. */
  lastEventSeq: number;
  /** How long to wait for the engine to catch up. */
  timeoutMs: number;
  /** Quiet polls in a row (nothing new in the hop, late and dead-letter streams). Default 3. */
  quietPolls?: number;
  pollMs?: number;
  /**
   * The engine is taken as stopped when its position in EVENTS has not moved for this long while
   * it is behind. Default {@link ENGINE_STALL_MS}.
   */
  stallMs?: number;
  signal?: AbortSignal;
}

/** How long an engine behind the replay may read nothing before the wait for it ends. */
export const ENGINE_STALL_MS = 20_000;

/**
 * Waits until a consumer of EVENTS (the engine's parse) has delivered everything up to
 * `lastEventSeq` (whatever was stored after it), every hop consumer has nothing pending, and the hop, late and dead-letter
 * streams stay unchanged for a few polls; then counts the late records and dead letters
 * published since `marks`, by reason.
 */
export async function awaitEngine(
  nc: NatsConnection,
  marks: EngineMarks,
  o: AwaitEngineOptions,
): Promise<EngineReport> {
  const jsm = await nc.jetstreamManager();
  const t0 = performance.now();
  const pollMs = o.pollMs ?? 300;
  const quietNeeded = o.quietPolls ?? 3;
  const until = Date.now() + o.timeoutMs;
  let caughtUp = false;
  let note: string | undefined;
  let quiet = 0;
  let last = "";
  let noReader = 0;
  let stopped = false;
  const stallMs = o.stallMs ?? ENGINE_STALL_MS;
  let position = -1;
  let movedAt = Date.now();
  try {
    while (!o.signal?.aborted) {
      const events = await consumerInfos(jsm, EVENTS_STREAM);
      const at = Math.max(-1, ...events.map((c) => c.delivered.stream_seq));
      if (at !== position) {
        position = at;
        movedAt = Date.now();
      }
      if (events.length === 0) {
        note = "no engine reads EVENTS (is `reco start` running against this NATS server?)";
        if (++noReader >= quietNeeded) break; // not worth the whole wait
      } else if (!events.some((c) => c.delivered.stream_seq >= o.lastEventSeq)) {
        // Behind the replay's last event. Events stored after it (another publisher, the next
        // replay) do not count: once the replay's own are read, the stages are what is waited for.
        note = "the engine had not read every replayed event yet";
        quiet = 0;
        if (Date.now() - movedAt >= stallMs) {
          note =
            `the engine stopped reading events (at ${position} of ${o.lastEventSeq} for ` +
            `${Math.round(stallMs / 1000)} s): is it running? The events are stored; it reads ` +
            `them when it starts again`;
          stopped = true;
          break;
        }
      } else {
        const hops = await consumerInfos(jsm, STREAMS.hops);
        const state = [
          await lastSeq(jsm, STREAMS.hops),
          await lastSeq(jsm, STREAMS.late),
          await lastSeq(jsm, STREAMS.dlq),
          Math.max(...events.map((c) => c.delivered.stream_seq)),
        ].join(" ");
        const pending = hops.some((c) => c.num_pending > 0);
        quiet = !pending && state === last ? quiet + 1 : 0;
        last = state;
        note = "the engine's stages had not caught up yet";
        if (quiet >= quietNeeded) {
          caughtUp = true;
          note = undefined;
          break;
        }
      }
      if (Date.now() + pollMs > until) break;
      await sleep(pollMs);
    }
  } catch (err) {
    // A stalled or stopped server: its JetStream API does not answer (nats.js says TIMEOUT).
    note = `NATS stopped answering while waiting for the engine (${errorText(err)})`;
    return {
      caughtUp: false,
      stopped: true,
      note,
      waitedMs: performance.now() - t0,
      late: {},
      dead: {},
    };
  }
  const duplicatesNow =
    marks.metricsUrl !== undefined && marks.duplicates !== undefined
      ? await engineDuplicates(marks.metricsUrl)
      : undefined;
  const waitedMs = performance.now() - t0;
  return {
    caughtUp,
    waitedMs,
    ...(note !== undefined ? { note } : {}),
    ...(stopped ? { stopped } : {}),
    late: await countReasons(nc, jsm, STREAMS.late, marks.late),
    dead: await countReasons(nc, jsm, STREAMS.dlq, marks.dlq),
    ...(duplicatesNow !== undefined && marks.duplicates !== undefined
      ? { duplicates: duplicatesNow - marks.duplicates }
      : {}),
  };
}

/**
 * `engine (caught up 1.2s after the last event): late 12 of 100 events sent [behind_watermark:user
 * 10 (10.0%), …], dead-lettered 0, duplicates 0`. An event can be late on several paths, so the
 * shares are per path.
 */
export function formatEngineReport(r: EngineReport, sent: number): string {
  const pct = (n: number) => (sent > 0 ? `${((100 * n) / sent).toFixed(1)}%` : "-");
  const list = (m: Record<string, number>) =>
    Object.entries(m)
      .sort((a, b) => b[1] - a[1] || (a[0] < b[0] ? -1 : 1))
      .map(([k, v]) => `${k} ${v} (${pct(v)})`)
      .join(", ");
  const late = Object.keys(r.late).length > 0 ? `late [${list(r.late)}]` : "late 0";
  const dead =
    Object.keys(r.dead).length > 0 ? `dead-lettered [${list(r.dead)}]` : "dead-lettered 0";
  const waited = (r.waitedMs / 1000).toFixed(1);
  const head = r.caughtUp
    ? `engine (caught up ${waited}s after the last event)`
    : `engine (not caught up after ${waited}s: ${r.note ?? "timed out"}; counts so far)`;
  const dups =
    r.duplicates !== undefined
      ? `duplicates ${r.duplicates}`
      : "duplicates not known (the engine's /metrics did not answer: --metrics-url)";
  return `${head}: ${late}, ${dead}, ${dups}`;
}

async function lastSeq(jsm: JetStreamManager, stream: string): Promise<number> {
  try {
    return (await jsm.streams.info(stream)).state.last_seq;
  } catch {
    return 0; // not created yet: the engine has not started on this server
  }
}

/** Counts the messages of `stream` after `after` by their `Reco-Reason` header. */
async function countReasons(
  nc: NatsConnection,
  jsm: JetStreamManager,
  stream: string,
  after: number,
): Promise<Record<string, number>> {
  const end = await lastSeq(jsm, stream);
  const counts: Record<string, number> = {};
  if (end <= after) return counts;
  const consumer = await nc.jetstream().consumers.get(stream, {
    deliver_policy: DeliverPolicy.StartSequence,
    opt_start_seq: after + 1,
    headers_only: true,
  });
  const messages = await consumer.consume({ max_messages: 1000 });
  try {
    for await (const m of messages) {
      // Poison letters carry the stage instead of a reason.
      const reason =
        m.headers?.get("Reco-Reason") ||
        (m.subject === "reco.dlq.poison"
          ? `poison:${m.headers?.get("Reco-Stage") ?? "?"}`
          : "unknown");
      counts[reason] = (counts[reason] ?? 0) + 1;
      if (m.seq >= end) break;
    }
  } finally {
    messages.stop();
  }
  return counts;
}

/** An error's text for one line: nats.js's bare codes spelled out. */
export function errorText(err: unknown): string {
  const text = err instanceof Error ? err.message : String(err);
  if (text === "TIMEOUT") return "no answer within the request timeout";
  return text;
}
