import { createReadStream } from "node:fs";
import { stat } from "node:fs/promises";
import { basename } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import type { JetStreamManager, NatsConnection } from "nats";
import { publisherUrl } from "../private-nats.js";
import {
  createJetStreamPublisher,
  type OutgoingMessage,
  type PubAckInfo,
} from "../../connectors/nats/publisher.js";
import { ensureEventsStream } from "../../connectors/nats/streams.js";
import { createReorderBuffer, eventTimeOf } from "./reorder.js";
import { awaitEngine, markEngineStreams, errorText, type EngineMarks } from "./engine-report.js";
import { rowParser, subjectFor, type ReplayFormat } from "./formats.js";
import {
  checkReadable,
  countBytes,
  gzipTextSize,
  isBlank,
  lineBatches,
  loadGenres,
  openText,
  sniffFormat,
} from "./text-files.js";
import {
  connect,
  defaultNatsUrl,
  PUBLISH_RETRIES,
  PUBLISH_TIMEOUT_MS,
  publishFailure,
  withoutCredentials,
} from "./connection.js";
import { createProgress } from "./progress.js";
import { MAX_REPORTED, type ReplaySummary } from "./summary.js";

/**
 * `reco replay`'s publishing: a file's rows read, sorted by event time, paced and published into
 * EVENTS, and the engine asked what it made of them. What the summary says (summary.ts), how NATS
 * is reached and a failure worded (connection.ts) and how progress is shown (progress.ts) live
 * beside it, and are exported here too, where the CLI and the tests import a replay from.
 */
export { formatSummary, MAX_REPORTED, type Rejection, type ReplaySummary } from "./summary.js";
export { defaultNatsUrl, PUBLISH_RETRIES, PUBLISH_TIMEOUT_MS } from "./connection.js";

export interface ReplayOptions {
  file: string;
  /** Used when `nc` is not given. Default: env NATS_URL, or nats://127.0.0.1:${NATS_PORT ?? 4222}. */
  natsUrl?: string;
  /** An open connection to use (left open afterwards). */
  nc?: NatsConnection;
  /** Default: detected from the first line and the file extension. */
  format?: ReplayFormat;
  /** MovieLens `movies.csv`: the first genre of a movie becomes its `category_code`. */
  moviesFile?: string;
  /** Stop after this many data rows (good or rejected). */
  limit?: number;
  /**
   * `time` (default): send in event-time order, sorted in memory when the file has at most
   * `sortBuffer` rows, else sorted with that bound (see reorder.ts); `file`: as in the file.
   */
  order?: "time" | "file";
  /** Rows held for sorting. Default {@link DEFAULT_SORT_BUFFER}. */
  sortBuffer?: number;
  /**
   * After sending, wait up to this long for the engine to catch up and report its late and
   * dead-lettered counts (engine-report.ts). Default 0: do not ask.
   */
  awaitEngineMs?: number;
  /** The engine's /metrics, for its duplicate count. */
  metricsUrl?: string;
  /** At most this many events per second. */
  rate?: number;
  /** Publisher window. Default 1024. */
  window?: number;
  /**
   * Where rejections (the first {@link MAX_REPORTED}, then `… N more`) and the progress bar go.
   * Default: nowhere. The CLI passes `process.stderr`.
   */
  stderr?: NodeJS.WritableStream & { isTTY?: boolean };
  /** Show a progress bar on `stderr`. Default: when `stderr` is a TTY. */
  progress?: boolean;
  /** Stops reading; what was already published is still awaited. */
  signal?: AbortSignal;
}

/** Room kept for the headers (Nats-Msg-Id) within the server's max_payload. */
const HEADER_ALLOWANCE = 1024;

/**
 * Rows sorted in memory at most: ~300 bytes each, so ~600 MB. MovieLens latest-small (100k) and
 * the REES46 samples fit whole; a larger file is sorted with this bound.
 */
export const DEFAULT_SORT_BUFFER = 2_000_000;

/**
 * Replays an event-log file into the EVENTS stream: every good row is published as JSON to
 * `events.<event_type>` with `Nats-Msg-Id` = `event_id`, so a second run of the same file inside
 * the stream's duplicate window (2 min by default) stores nothing new. Bad rows are reported and
 * counted, never fatal; a publish failure (no stream, timeout) is fatal.
 */
export async function replayFile(options: ReplayOptions): Promise<ReplaySummary> {
  const started = performance.now();
  await checkReadable(options.file);
  if (options.moviesFile !== undefined) await checkReadable(options.moviesFile);
  const format = options.format ?? (await sniffFormat(options.file));
  const out = options.stderr;
  const movies = options.moviesFile;
  const genres =
    movies !== undefined
      ? await loadGenres(movies, (line, reason) =>
          out?.write(`${basename(movies)} line ${line}: ${reason}\n`),
        )
      : undefined;
  const gz = /\.gz$/i.test(options.file);
  // Progress follows the text read: for a .gz, against its uncompressed size (gzip's trailer).
  const size = gz ? await gzipTextSize(options.file) : (await stat(options.file)).size;

  const meter = createProgress(out, size, options.progress);

  const summary: ReplaySummary = {
    format,
    rows: 0,
    sent: 0,
    duplicates: 0,
    order: options.order === "file" ? "file" : "sorted",
    outOfOrder: 0,
    rejected: 0,
    rejections: [],
    elapsedMs: 0,
    aborted: false,
  };
  const reject = (line: number, reason: string): void => {
    summary.rejected++;
    if (summary.rejections.length >= MAX_REPORTED) return;
    summary.rejections.push({ line, reason });
    meter.log(`line ${line}: ${reason}`);
  };

  const servers = options.natsUrl ?? defaultNatsUrl();
  const nc =
    options.nc ??
    (await connect(
      servers,
      options.natsUrl === undefined &&
        process.env.NATS_URL === undefined &&
        publisherUrl() !== undefined
        ? `${process.env.DATA_DIR ?? "./data"}`
        : undefined,
    ));
  try {
    const awaitMs = options.awaitEngineMs ?? 0;
    let jsm: JetStreamManager;
    let marks: EngineMarks | undefined;
    try {
      jsm = await nc.jetstreamManager();
      await ensureEventsStream(jsm);
      marks = awaitMs > 0 ? await markEngineStreams(jsm, options.metricsUrl) : undefined;
    } catch (err) {
      // A stalled server's JetStream API does not answer (nats.js says a bare TIMEOUT).
      throw new Error(
        `NATS at ${withoutCredentials(servers)} did not answer JetStream requests ` +
          `(${errorText(err)}): is the server running, and is it stalled?`,
        { cause: err },
      );
    }
    const pub = createJetStreamPublisher(nc, {
      window: options.window ?? 1024,
      timeoutMs: PUBLISH_TIMEOUT_MS,
      retries: PUBLISH_RETRIES,
    });
    const input = createReadStream(options.file);
    const text = countBytes(input, gz);
    meter.begin(() => text.bytes());
    const progress = () => meter.update(summary);
    const parseRow = rowParser(format, genres);
    const encoder = new TextEncoder();
    const maxPayload = nc.info?.max_payload ?? 1024 * 1024;
    const { limit, rate, signal } = options;
    const sorter =
      options.order === "file"
        ? undefined
        : createReorderBuffer<OutgoingMessage>(options.sortBuffer ?? DEFAULT_SORT_BUFFER);
    let lastTs = NaN;

    // One batch per chunk of the file: an await per chunk, not per row.
    async function* messages(): AsyncGenerator<OutgoingMessage[]> {
      const rateStart = performance.now();
      let produced = 0;
      let line = 0;
      let batch: OutgoingMessage[] = [];
      // Paces what is released (in time order), not what is read.
      async function* release(msgs: OutgoingMessage[]): AsyncGenerator<OutgoingMessage[]> {
        for (const msg of msgs) {
          produced++;
          batch.push(msg);
          if (rate !== undefined) {
            const aheadMs = (produced / rate) * 1000 - (performance.now() - rateStart);
            // Sleep off a lead of a few ms at a time, not per event.
            if (aheadMs > 5) {
              yield batch;
              batch = [];
              await sleep(aheadMs);
            }
          }
        }
      }
      let done = false;
      for await (const lines of lineBatches(openText(text.stream))) {
        if (signal?.aborted) {
          summary.aborted = true;
          break;
        }
        for (const t of lines) {
          line++;
          if (isBlank(t)) continue;
          const r = parseRow(t, line);
          if (r === undefined) continue; // the header
          if (limit !== undefined && summary.rows >= limit) {
            done = true;
            break;
          }
          summary.rows++;
          if (!r.ok) {
            reject(line, r.reason);
            continue;
          }
          const data = encoder.encode(r.raw ?? JSON.stringify(r.event));
          // The server would refuse it, and a failed publish ends the replay: a bad row instead.
          if (data.length + HEADER_ALLOWANCE > maxPayload) {
            reject(
              line,
              `event of ${data.length} bytes does not fit the server's max_payload (${maxPayload} bytes)`,
            );
            continue;
          }
          const msg = { subject: subjectFor(r.event), data, opts: { msgId: r.event.event_id } };
          if (!sorter) {
            yield* release([msg]);
            continue;
          }
          // A row without a readable time keeps its place next to the row before it (the
          // engine dead-letters it anyway).
          const ts = eventTimeOf(r.event.event_ts);
          if (!Number.isNaN(ts)) lastTs = ts;
          yield* release(sorter.push(Number.isNaN(lastTs) ? -Infinity : lastTs, msg));
        }
        if (batch.length > 0) yield batch;
        batch = [];
        progress();
        if (done) break;
      }
      if (sorter) {
        yield* release(sorter.drain());
        summary.outOfOrder = sorter.outOfOrder;
        if (
          summary.order === "sorted" &&
          summary.rows > (options.sortBuffer ?? DEFAULT_SORT_BUFFER)
        )
          summary.order = "bounded";
      }
      if (batch.length > 0) yield batch;
      batch = [];
    }

    let lastSeq = 0;
    const onAck = (ack: PubAckInfo): void => {
      summary.sent++;
      if (ack.duplicate) summary.duplicates++;
      lastSeq = Math.max(lastSeq, ack.seq);
      progress();
    };
    let failed = false;
    try {
      // At the first failure: what is still in flight fails the same way, and a re-run re-sends
      // it under the same ids, so it is not waited for.
      await pub.publishMany(messages(), onAck, { failFast: true });
    } catch (err) {
      failed = true;
      throw publishFailure(err, options.nc ? "the given connection" : servers, summary.sent);
    } finally {
      input.destroy();
      if (!failed) await pub.close().catch(() => {});
    }
    progress();
    meter.stop();
    summary.elapsedMs = performance.now() - started;
    if (marks && summary.sent > 0 && !summary.aborted) {
      out?.write("waiting for the engine to catch up (late and dead-lettered counts)…\n");
      summary.engine = await awaitEngine(nc, marks, {
        lastEventSeq: lastSeq,
        timeoutMs: awaitMs,
        ...(signal ? { signal } : {}),
      });
    }
  } finally {
    meter.stop();
    if (options.nc === undefined) await nc.close();
  }
  if (summary.rejected > summary.rejections.length) {
    out?.write(`… ${summary.rejected - summary.rejections.length} more\n`);
  }
  if (summary.elapsedMs === 0) summary.elapsedMs = performance.now() - started;
  return summary;
}
