import { createReadStream } from "node:fs";
import { open, stat } from "node:fs/promises";
import { Transform, type Readable } from "node:stream";
import { createGunzip } from "node:zlib";
import {
  detectFormat,
  isHeader,
  MOVIELENS_MOVIES_COLUMNS,
  parseMoviesRow,
  splitCsvLine,
  type ReplayFormat,
} from "./formats.js";

/**
 * Reading a replay's input files: whether a file can be read, its text (gunzipped for .gz) in
 * batches of lines, its format from its first line, and MovieLens' movies.csv genres. Shared by
 * `reco replay` and `reco eval`.
 */

/** Raised when the file's format can be neither detected nor was given. */
export class UnknownFormatError extends Error {
  override name = "UnknownFormatError";
}

/** Raised when an input file cannot be read (missing, a directory, no permission). */
export class ReplayFileError extends Error {
  override name = "ReplayFileError";
}

/** One line naming the file and what is wrong with it, for a file that cannot be read. */
export async function checkReadable(file: string): Promise<void> {
  try {
    const s = await stat(file);
    if (s.isDirectory()) throw new ReplayFileError(`cannot read ${file}: it is a directory`);
    await (await open(file, "r")).close();
  } catch (err) {
    if (err instanceof ReplayFileError) throw err;
    const code = (err as NodeJS.ErrnoException).code;
    const why =
      code === "ENOENT"
        ? "no such file"
        : code === "EACCES"
          ? "permission denied"
          : (code ?? String(err));
    throw new ReplayFileError(`cannot read ${file}: ${why}`, { cause: err });
  }
}

/**
 * The uncompressed size of a .gz file from its trailer (ISIZE: the size modulo 4 GiB, of the last
 * member), for the progress bar only; the compressed size when the trailer says nothing useful.
 */
export async function gzipTextSize(file: string): Promise<number> {
  const fh = await open(file, "r");
  try {
    const { size } = await fh.stat();
    if (size < 18) return size;
    const tail = Buffer.alloc(4);
    await fh.read(tail, 0, 4, size - 4);
    const isize = tail.readUInt32LE(0);
    return isize > 0 ? isize : size;
  } finally {
    await fh.close();
  }
}

/** The file's bytes as text (gunzipped for a .gz) and a count of the text bytes read so far. */
export function countBytes(input: Readable, gz: boolean): { stream: Readable; bytes(): number } {
  let n = 0;
  const counter = new Transform({
    transform(chunk: Buffer, _enc, done) {
      n += chunk.length;
      done(null, chunk);
    },
  });
  const source = gz ? input.pipe(createGunzip()) : input;
  // A broken or cut-off .gz fails the replay with its message, not an unhandled error.
  source.on("error", (err) => counter.destroy(err));
  return { stream: source.pipe(counter), bytes: () => n };
}

export function isBlank(text: string): boolean {
  return text.length === 0 || (text.charCodeAt(0) <= 32 && text.trim() === "");
}

/** A byte stream as text: setEncoding keeps characters split across chunks whole. */
export function openText(source: Readable): Readable {
  source.setEncoding("utf8");
  return source;
}

/** The file's text, gunzipped when it ends in `.gz`. */
function openFileText(input: Readable, file: string): Readable {
  return openText(/\.gz$/i.test(file) ? input.pipe(createGunzip()) : input);
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

export async function sniffFormat(file: string): Promise<ReplayFormat> {
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
    for await (const lines of lineBatches(openFileText(input, file))) return lines[0] ?? "";
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
  for await (const lines of lineBatches(openFileText(createReadStream(file), file))) {
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
