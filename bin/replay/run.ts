import { createReadStream } from "node:fs";
import { stat } from "node:fs/promises";
import { basename } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import cliProgress from "cli-progress";
import type { JetStreamManager, NatsConnection } from "nats";
import { connectNats } from "../../connectors/nats/connection.js";
import { publisherUrl } from "../private-nats.js";
import {
  createJetStreamPublisher,
  PublisherClosedError,
  PublishTimeoutError,
  type OutgoingMessage,
  type PubAckInfo,
} from "../../connectors/nats/publisher.js";
import { ensureEventsStream } from "../../connectors/nats/streams.js";
import { createReorderBuffer, eventTimeOf } from "./reorder.js";
import {
  awaitEngine,
  formatEngineReport,
  markEngineStreams,
  errorText,
  type EngineMarks,
  type EngineReport,
} from "./engine-report.js";
import {
  isHeader,
  MOVIELENS_RATINGS_COLUMNS,
  parseJsonlLine,
  parseMovieLensRow,
  parseRees46Row,
  REES46_COLUMNS,
  splitCsvLine,
  subjectFor,
  type ReplayFormat,
  type RowResult,
} from "./formats.js";
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

export interface Rejection {
  line: number;
  reason: string;
}

export interface ReplaySummary {
  format: ReplayFormat;
  /** Data rows read (the header and blank lines not counted); what `limit` counts. */
  rows: number;
  /** Events published and acked, duplicates included. */
  sent: number;
  /**
   * Events the stream already held (same `Nats-Msg-Id` inside its duplicate window, 2 min by
   * default): a repeated row of this file, or an event of a replay that ran just before.
   */
  duplicates: number;
  /** How the events were ordered: by event time (`sorted`, `bounded`) or as in the file. */
  order: "sorted" | "bounded" | "file";
  /** Rows sent behind a later event time (only with the bounded sort of a large file). */
  outOfOrder: number;
  /** What the engine made of them, when asked (`awaitEngineMs`). */
  engine?: EngineReport;
  /** Rows that could not be turned into an event. */
  rejected: number;
  /** The first {@link MAX_REPORTED} rejections. */
  rejections: Rejection[];
  elapsedMs: number;
  /** True when stopped early by `signal` (what was read so far is sent and acked). */
  aborted: boolean;
}

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

/**
 * A publish's deadline: each attempt waits this long for its ack, and is sent again up to
 * {@link PUBLISH_RETRIES} times with the same id (never stored twice), so a replay into a
 * stopped or stalled server ends within about 15 s of its last ack.
 */
export const PUBLISH_TIMEOUT_MS = 5_000;
export const PUBLISH_RETRIES = 2;

/** Room kept for the headers (Nats-Msg-Id) within the server's max_payload. */
const HEADER_ALLOWANCE = 1024;

/**
 * Rows sorted in memory at most: ~300 bytes each, so ~600 MB. MovieLens latest-small (100k) and
 * the REES46 samples fit whole; a larger file is sorted with this bound.
 */
export const DEFAULT_SORT_BUFFER = 2_000_000;

/** Rejections printed and kept in the summary; the rest are only counted. */
export const MAX_REPORTED = 20;

/**
 * NATS_URL, else the private server of `reco start` in DATA_DIR with the publisher credentials
 * it wrote there (nats-publisher.json), else the default port without credentials.
 */
export function defaultNatsUrl(env: NodeJS.ProcessEnv = process.env): string {
  return env.NATS_URL ?? publisherUrl(env) ?? `nats://127.0.0.1:${env.NATS_PORT ?? 4222}`;
}

/**
 * `read N rows: sent M events in event-time order (D already in the stream), rejected K rows, in
 * X.Xs (R events/s)`, then the engine's line when it was asked.
 */
export function formatSummary(s: ReplaySummary): string {
  const secs = s.elapsedMs / 1000;
  const rate = secs > 0 ? Math.round(s.sent / secs) : s.sent;
  const order =
    s.order === "sorted"
      ? "in event-time order (sorted in memory)"
      : s.order === "bounded"
        ? `in event-time order (sorted with a bound: ${s.outOfOrder} rows still out of order)`
        : "in file order";
  const lines = [
    `read ${s.rows} rows: sent ${s.sent} events ${order} ` +
      `(${s.duplicates} already in the stream), rejected ${s.rejected} rows, ` +
      `in ${secs.toFixed(1)}s (${rate} events/s)`,
  ];
  if (s.engine) lines.push(formatEngineReport(s.engine, s.sent));
  const late = s.engine ? Math.max(0, ...Object.values(s.engine.late)) : 0;
  if (s.sent > 0 && late > s.sent / 2)
    lines.push(
      `most events were late (${late} of ${s.sent} on one path): the engine's event-time clock ` +
        "was already past this log (it had seen later events), so they counted for nothing. " +
        "Replay it into an engine with a fresh DATA_DIR (e.g. DATA_DIR=./data-movies npm start) " +
        "to have them counted",
    );
  return lines.join("\n");
}

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

  const showProgress = out !== undefined && (options.progress ?? out.isTTY === true);
  const multibar = showProgress
    ? new cliProgress.MultiBar(
        {
          stream: out,
          format:
            "{bar} {percentage}% | {sent} sent, ~{pending} to go | {rate} events/s | {rejected} rejected | ETA {eta_formatted}",
          hideCursor: true,
          clearOnComplete: false,
        },
        cliProgress.Presets.shades_classic,
      )
    : undefined;
  const bar = multibar?.create(size, 0, { sent: 0, rejected: 0, rate: 0, pending: "?" });
  // Without a terminal: a line every 10 s (a replay of millions of rows takes minutes).
  const logEveryMs = 10_000;
  let loggedAt = performance.now();

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
    const text = `line ${line}: ${reason}`;
    if (multibar) multibar.log(`${text}\n`);
    else out?.write(`${text}\n`);
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
    const sendStart = performance.now();
    /** The bar on a terminal, a line every 10 s otherwise: sent, to go, events/s, time left. */
    const progress = () => {
      const read = Math.min(text.bytes(), size);
      const s = (performance.now() - sendStart) / 1000;
      const perSec = s > 0 ? summary.sent / s : 0;
      // Events to go: rows read and not sent yet (the sort holds them), and the rows of the part
      // of the file not read yet, at the rows per byte so far.
      const unread = read > 0 ? (summary.rows * (size - read)) / read : 0;
      const toGo = Math.max(0, Math.round(summary.rows - summary.sent - summary.rejected + unread));
      bar?.update(read, {
        sent: summary.sent,
        rejected: summary.rejected,
        rate: Math.round(perSec).toLocaleString("en-US"),
        pending: toGo.toLocaleString("en-US"),
      });
      if (bar || !out || performance.now() - loggedAt < logEveryMs) return;
      loggedAt = performance.now();
      const left = perSec > 0 ? `, about ${Math.ceil(toGo / perSec)} s left` : "";
      out.write(
        `replay: ${Math.floor((100 * read) / Math.max(1, size))}% read, ${summary.sent.toLocaleString("en-US")} events sent, ~${toGo.toLocaleString("en-US")} to go, ${Math.round(perSec).toLocaleString("en-US")} events/s${left}\n`,
      );
    };
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
    multibar?.stop();
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
    multibar?.stop();
    if (options.nc === undefined) await nc.close();
  }
  if (summary.rejected > summary.rejections.length) {
    out?.write(`… ${summary.rejected - summary.rejections.length} more\n`);
  }
  if (summary.elapsedMs === 0) summary.elapsedMs = performance.now() - started;
  return summary;
}

/** A NATS URL without the credentials it may carry. */
const withoutCredentials = (servers: string) => servers.replace(/\/\/[^/,\s]*@/g, "//");

async function connect(servers: string, credentialsFrom?: string): Promise<NatsConnection> {
  try {
    return await connectNats({ servers, name: "reco-replay" });
  } catch (err) {
    const why = err instanceof Error ? err.message : String(err);
    const where = withoutCredentials(servers);
    if (/authorization/i.test(why))
      throw new Error(
        credentialsFrom === undefined
          ? `NATS at ${where} refused the connection (${why}): no credentials for the ` +
              `engine's NATS in ${process.env.DATA_DIR ?? "./data"}: set DATA_DIR to the engine's`
          : `NATS at ${where} refused the credentials in ${credentialsFrom} (${why}): set ` +
              `DATA_DIR to the data folder of the engine that runs there`,
        { cause: err },
      );
    throw new Error(`cannot connect to NATS at ${where}: ${why}`, { cause: err });
  }
}

/**
 * The one line a failed publish ends a replay with: the cause, how far it got, and how to resume.
 */
function publishFailure(err: unknown, servers: string, stored: number): Error {
  const where = withoutCredentials(servers);
  const cause =
    err instanceof PublishTimeoutError
      ? `stopped acknowledging events (none within ${PUBLISH_TIMEOUT_MS / 1000} s, ` +
        `${PUBLISH_RETRIES + 1} attempts): the server stopped, stalled or is unreachable`
      : err instanceof PublisherClosedError
        ? "closed the connection"
        : `refused an event (${err instanceof Error ? err.message : String(err)})`;
  return new Error(
    `NATS at ${where} ${cause}; ${stored} events were stored. Re-run the same command to ` +
      `resume: events already stored are known by their ids and counted once (docs/REPLAY.md)`,
    { cause: err },
  );
}

/** A row parser for one file; `undefined` for the CSV header line. */
function rowParser(
  format: ReplayFormat,
  genres: ReadonlyMap<string, string> | undefined,
): (text: string, line: number) => RowResult | undefined {
  if (format === "jsonl") return (text) => parseJsonlLine(text);
  const columns = format === "rees46" ? REES46_COLUMNS : MOVIELENS_RATINGS_COLUMNS;
  return (text, line) => {
    const split = splitCsvLine(text);
    if (!split.ok) return split;
    if (line === 1 && isHeader(split.fields, columns)) return undefined;
    return format === "rees46"
      ? parseRees46Row(split.fields)
      : parseMovieLensRow(split.fields, genres);
  };
}
