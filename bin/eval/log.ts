import { createReadStream, statSync } from "node:fs";
import { join } from "node:path";
import { createGunzip } from "node:zlib";
import { normaliseEvent, type Interaction } from "../../actors/contract/index.js";
import {
  MOVIELENS_RATINGS_COLUMNS,
  REES46_COLUMNS,
  detectFormat,
  isHeader,
  parseJsonlLine,
  parseMovieLensRow,
  parseRees46Row,
  splitCsvLine,
  type ReplayFormat,
  type RowResult,
} from "../replay/formats.js";
import { lineBatches, loadGenres } from "../replay/text-files.js";

/** One event of a log under evaluation: the normalised interaction and its session. */
export interface LogEvent extends Interaction {
  sess?: string;
}

export interface EvalLog {
  format: ReplayFormat;
  /** Accepted events in time order (ties keep the file's order). */
  events: LogEvent[];
  /** Rows that were not events (bad rows, duplicates of an event id). */
  rejected: number;
  /** Item → main category, from the events (and the movies catalogue). */
  categories: Map<string, string>;
}

/**
 * Reads an event log with `reco replay`'s row readers (bin/replay/formats.ts) and the event
 * contract's normalisation (actors/contract/event.ts): REES46 CSV, MovieLens `ratings.csv` (a MovieLens
 * directory means its `ratings.csv` with its `movies.csv`), or JSONL. Duplicate event ids are
 * kept once, as parse keeps them.
 */
export async function readLog(path: string, o: { movies?: string } = {}): Promise<EvalLog> {
  let file = path;
  let movies = o.movies;
  if (statSync(path).isDirectory()) {
    file = join(path, "ratings.csv");
    movies ??= join(path, "movies.csv");
  }
  const format = await sniff(file);
  const genres = format === "movielens" && movies ? await loadGenres(movies) : undefined;
  const events: LogEvent[] = [];
  const seen = new Set<string>();
  const categories = new Map<string, string>();
  let rejected = 0;
  let line = 0;
  const input = createReadStream(file);
  const text = /\.gz$/i.test(file) ? input.pipe(createGunzip()) : input;
  text.setEncoding("utf8");
  for await (const lines of lineBatches(text)) {
    for (const row of lines) {
      line++;
      if (row.trim() === "") continue;
      const r = parseRow(format, row, line, genres);
      if (r === undefined) continue;
      if (!r.ok) {
        rejected++;
        continue;
      }
      const n = normaliseEvent(r.event);
      if (!n.ok || seen.has(n.event.id.toLowerCase())) {
        rejected++;
        continue;
      }
      seen.add(n.event.id.toLowerCase());
      const e: LogEvent = n.event;
      const sess = r.event.session_id;
      if (typeof sess === "string" && sess !== "") e.sess = sess;
      if (e.c) categories.set(e.i, e.c);
      events.push(e);
    }
  }
  if (genres) for (const [i, c] of genres) if (!categories.has(i)) categories.set(i, c);
  // A stable sort: MovieLens files are ordered by user, not by time.
  events.sort((a, b) => a.ts - b.ts);
  return { format, events, rejected, categories };
}

function parseRow(
  format: ReplayFormat,
  text: string,
  line: number,
  genres: ReadonlyMap<string, string> | undefined,
): RowResult | undefined {
  if (format === "jsonl") return parseJsonlLine(text);
  const split = splitCsvLine(text);
  if (!split.ok) return split;
  const columns = format === "rees46" ? REES46_COLUMNS : MOVIELENS_RATINGS_COLUMNS;
  if (line === 1 && isHeader(split.fields, columns)) return undefined;
  return format === "rees46"
    ? parseRees46Row(split.fields)
    : parseMovieLensRow(split.fields, genres);
}

async function sniff(file: string): Promise<ReplayFormat> {
  const input = createReadStream(file, { end: 64 * 1024 - 1 });
  const text = /\.gz$/i.test(file) ? input.pipe(createGunzip()) : input;
  text.setEncoding("utf8");
  let first = "";
  try {
    for await (const lines of lineBatches(text)) {
      first = lines[0] ?? "";
      break;
    }
  } catch {
    // a gzip cut at 64 KiB may not decode: the extension may still tell
  } finally {
    input.destroy();
  }
  const format = detectFormat(file, first);
  if (!format) throw new Error(`cannot tell the format of ${file} (JSONL, REES46 CSV, MovieLens)`);
  return format;
}
