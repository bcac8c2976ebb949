import { createReadStream } from "node:fs";
import { stat } from "node:fs/promises";
import { basename } from "node:path";
import type { Readable } from "node:stream";
import { setTimeout as sleep } from "node:timers/promises";
import { createGunzip } from "node:zlib";
import cliProgress from "cli-progress";
import type { NatsConnection } from "nats";
import { connectNats } from "../../connectors/nats/connection.js";
import {
  createJetStreamPublisher,
  type OutgoingMessage,
  type PubAckInfo,
} from "../../connectors/nats/publisher.js";
import { ensureEventsStream } from "../../connectors/nats/streams.js";
import {
  detectFormat,
  isHeader,
  MOVIELENS_MOVIES_COLUMNS,
  MOVIELENS_RATINGS_COLUMNS,
  parseJsonlLine,
  parseMovieLensRow,
  parseMoviesRow,
  parseRees46Row,
  REES46_COLUMNS,
  splitCsvLine,
  subjectFor,
  type ReplayFormat,
  type RowResult,
} from "./formats.js";

export interface Rejection {
  line: number;
  reason: string;
}

export interface ReplaySummary {
  format: ReplayFormat;
  /** Events published and acked, duplicates included. */
  sent: number;
  /** Events the stream already held (same `Nats-Msg-Id` inside its duplicate window). */
  duplicates: number;
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
  /** Stop after this many events. */
  limit?: number;
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

/** Rejections printed and kept in the summary; the rest are only counted. */
export const MAX_REPORTED = 20;

/** Raised when the file's format can be neither detected nor was given. */
export class UnknownFormatError extends Error {
  override name = "UnknownFormatError";
}

export function defaultNatsUrl(env: NodeJS.ProcessEnv = process.env): string {
  return env.NATS_URL ?? `nats://127.0.0.1:${env.NATS_PORT ?? 4222}`;
}

/** `sent N events (M duplicates), rejected K rows, in X.Xs (R events/s)` */
export function formatSummary(s: ReplaySummary): string {
  const secs = s.elapsedMs / 1000;
  const rate = secs > 0 ? Math.round(s.sent / secs) : s.sent;
  return (
    `sent ${s.sent} events (${s.duplicates} duplicates), rejected ${s.rejected} rows, ` +
    `in ${secs.toFixed(1)}s (${rate} events/s)`
  );
}

/**
 * Replays an event-log file into the EVENTS stream: every good row is published as JSON to
 * `events.<event_type>` with `Nats-Msg-Id` = `event_id`, so a second run of the same file inside
 * the stream's duplicate window (2 min by default) stores nothing new. Bad rows are reported and
 * counted, never fatal; a publish failure (no stream, timeout) is fatal.
 */
export async function replayFile(options: ReplayOptions): Promise<ReplaySummary> {
  const started = performance.now();
  const format = options.format ?? (await sniffFormat(options.file));
  const out = options.stderr;
  const movies = options.moviesFile;
  const genres =
    movies !== undefined
      ? await loadGenres(movies, (line, reason) =>
          out?.write(`${basename(movies)} line ${line}: ${reason}\n`),
        )
      : undefined;
  const { size } = await stat(options.file);

  const showProgress = out !== undefined && (options.progress ?? out.isTTY === true);
  const multibar = showProgress
    ? new cliProgress.MultiBar(
        {
          stream: out,
          format: "{bar} {percentage}% | {sent} sent | {rejected} rejected | ETA {eta_formatted}",
          hideCursor: true,
          clearOnComplete: false,
        },
        cliProgress.Presets.shades_classic,
      )
    : undefined;
  const bar = multibar?.create(size, 0, { sent: 0, rejected: 0 });

  const summary: ReplaySummary = {
    format,
    sent: 0,
    duplicates: 0,
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

  const nc = options.nc ?? (await connect(options.natsUrl ?? defaultNatsUrl()));
  try {
    await ensureEventsStream(await nc.jetstreamManager());
    const pub = createJetStreamPublisher(nc, { window: options.window ?? 1024 });
    const input = createReadStream(options.file);
    const parseRow = rowParser(format, idName(options.file), genres);
    const encoder = new TextEncoder();
    const maxPayload = nc.info?.max_payload ?? 1024 * 1024;
    const { limit, rate, signal } = options;

    // One batch per chunk of the file: an await per chunk, not per row.
    async function* messages(): AsyncGenerator<OutgoingMessage[]> {
      const rateStart = performance.now();
      let produced = 0;
      let line = 0;
      for await (const lines of lineBatches(openText(input, options.file))) {
        if (signal?.aborted) {
          summary.aborted = true;
          break;
        }
        let batch: OutgoingMessage[] = [];
        let done = false;
        for (const text of lines) {
          line++;
          if (isBlank(text)) continue;
          const r = parseRow(text, line);
          if (r === undefined) continue; // the header
          if (!r.ok) {
            reject(line, r.reason);
            continue;
          }
          if (limit !== undefined && produced >= limit) {
            done = true;
            break;
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
          produced++;
          batch.push({ subject: subjectFor(r.event), data, opts: { msgId: r.event.event_id } });
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
        if (batch.length > 0) yield batch;
        bar?.update(input.bytesRead, { sent: summary.sent, rejected: summary.rejected });
        if (done) break;
      }
    }

    const onAck = (ack: PubAckInfo): void => {
      summary.sent++;
      if (ack.duplicate) summary.duplicates++;
    };
    try {
      await pub.publishMany(messages(), onAck);
    } finally {
      input.destroy();
      await pub.close().catch(() => {});
    }
    bar?.update(input.bytesRead, { sent: summary.sent, rejected: summary.rejected });
  } finally {
    multibar?.stop();
    if (options.nc === undefined) await nc.close();
  }
  if (summary.rejected > summary.rejections.length) {
    out?.write(`… ${summary.rejected - summary.rejections.length} more\n`);
  }
  summary.elapsedMs = performance.now() - started;
  return summary;
}

async function connect(servers: string): Promise<NatsConnection> {
  try {
    return await connectNats({ servers, name: "reco-replay" });
  } catch (err) {
    const why = err instanceof Error ? err.message : String(err);
    throw new Error(`cannot connect to NATS at ${servers}: ${why}`, { cause: err });
  }
}

/** The name event ids derive from: `x.csv.gz` gives the ids of `x.csv`, so both deduplicate. */
function idName(file: string): string {
  return basename(file).replace(/\.gz$/i, "");
}

/** A row parser for one file; `undefined` for the CSV header line. */
function rowParser(
  format: ReplayFormat,
  name: string,
  genres: ReadonlyMap<string, string> | undefined,
): (text: string, line: number) => RowResult | undefined {
  if (format === "jsonl") return (text, line) => parseJsonlLine(text, { basename: name, line });
  const columns = format === "rees46" ? REES46_COLUMNS : MOVIELENS_RATINGS_COLUMNS;
  return (text, line) => {
    const split = splitCsvLine(text);
    if (!split.ok) return split;
    if (line === 1 && isHeader(split.fields, columns)) return undefined;
    const ctx = { basename: name, line };
    return format === "rees46"
      ? parseRees46Row(split.fields, ctx)
      : parseMovieLensRow(split.fields, ctx, genres);
  };
}

function isBlank(text: string): boolean {
  return text.length === 0 || (text.charCodeAt(0) <= 32 && text.trim() === "");
}

/** The file's text, gunzipped when it ends in `.gz`. */
function openText(input: Readable, file: string): Readable {
  const source = /\.gz$/i.test(file) ? input.pipe(createGunzip()) : input;
  source.setEncoding("utf8"); // keeps characters split across chunks whole
  return source;
}

/**
 * The lines of a text stream, one array per chunk read (LF or CRLF endings, a leading BOM
 * dropped, a last line without a newline included). Used instead of readline, which resolves a
 * promise per line: the batches spare the consumer an await per row.
 */
export async function* lineBatches(source: AsyncIterable<string>): AsyncGenerator<string[]> {
  let rest = "";
  let first = true;
  for await (const chunk of source) {
    let text = rest + chunk;
    if (first) {
      first = false;
      if (text.charCodeAt(0) === 0xfeff) text = text.slice(1);
    }
    const lines = text.split("\n");
    rest = lines.pop()!;
    for (let i = 0; i < lines.length; i++) {
      const l = lines[i]!;
      if (l.endsWith("\r")) lines[i] = l.slice(0, -1);
    }
    if (lines.length > 0) yield lines;
  }
  if (rest.endsWith("\r")) rest = rest.slice(0, -1);
  if (rest !== "") yield [rest];
}

async function sniffFormat(file: string): Promise<ReplayFormat> {
  const format = detectFormat(file, await firstLine(file));
  if (format === undefined) {
    throw new UnknownFormatError(
      `cannot tell the format of ${file} from its first line or extension; ` +
        `pass --format jsonl|rees46|movielens`,
    );
  }
  return format;
}

async function firstLine(file: string): Promise<string> {
  const input = createReadStream(file, { end: 64 * 1024 - 1 });
  try {
    for await (const lines of lineBatches(openText(input, file))) return lines[0] ?? "";
    return "";
  } catch {
    return ""; // a gzip cut off at 64 KiB may fail to decode: the extension may still tell
  } finally {
    input.destroy();
  }
}

/**
 * movieId → category (first genre, lowercased) from MovieLens `movies.csv`. Rows that cannot be
 * read go to `reject`; their movies simply get no category.
 */
export async function loadGenres(
  file: string,
  reject: (line: number, reason: string) => void = () => {},
): Promise<Map<string, string>> {
  const genres = new Map<string, string>();
  let line = 0;
  for await (const lines of lineBatches(openText(createReadStream(file), file))) {
    for (const text of lines) {
      line++;
      if (isBlank(text)) continue;
      const split = splitCsvLine(text);
      if (!split.ok) {
        reject(line, split.reason);
        continue;
      }
      if (line === 1 && isHeader(split.fields, MOVIELENS_MOVIES_COLUMNS)) continue;
      const r = parseMoviesRow(split.fields);
      if (!r.ok) reject(line, r.reason);
      else if (r.category !== undefined) genres.set(r.movieId, r.category);
    }
  }
  return genres;
}
