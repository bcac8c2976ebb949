import { readFileSync } from "node:fs";
import { isHeader, MOVIELENS_MOVIES_COLUMNS, parseMoviesRow, splitCsvLine } from "./formats.js";

/** Raised when MOVIES_CATALOG cannot be read as a MovieLens `movies.csv`. */
export class MoviesCatalogError extends Error {
  override name = "MoviesCatalogError";
}

/**
 * Loads a MovieLens `movies.csv` (`movieId,title,genres`): movie id -> its first genre,
 * lowercased, by the rule of `reco replay --movies` (bin/replay/formats.ts parseMoviesRow).
 * Movies without genres and rows that cannot be read get no category. Throws
 * MoviesCatalogError when the file is unreadable or has not the movies.csv header.
 */
export function loadMoviesCatalog(file: string): Map<string, string> {
  let text: string;
  try {
    text = readFileSync(file, "utf8");
  } catch (err) {
    throw new MoviesCatalogError(`cannot read the movies catalogue ${file}`, { cause: err });
  }
  const lines = text.replace(/^\uFEFF/, "").split(/\r?\n/);
  const head = splitCsvLine(lines[0] ?? "");
  if (!head.ok || !isHeader(head.fields, MOVIELENS_MOVIES_COLUMNS))
    throw new MoviesCatalogError(
      `${file} is not a MovieLens movies.csv: expected the header ${MOVIELENS_MOVIES_COLUMNS.join(",")}`,
    );
  const genres = new Map<string, string>();
  for (let k = 1; k < lines.length; k++) {
    const line = lines[k]!;
    if (line.trim() === "") continue;
    const split = splitCsvLine(line);
    if (!split.ok) continue;
    const r = parseMoviesRow(split.fields);
    if (r.ok && r.category !== undefined) genres.set(r.movieId, r.category);
  }
  return genres;
}
