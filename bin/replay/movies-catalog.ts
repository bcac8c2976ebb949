import { readFileSync } from "node:fs";
import { isUItemLine, loadMovieTitles, MoviesCatalogError } from "./movies-titles.js";
import { isHeader, MOVIELENS_MOVIES_COLUMNS, parseMoviesRow, splitCsvLine } from "./formats.js";

export { MoviesCatalogError };

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
  if (isUItemLine(lines[0] ?? "")) {
    // ml-100k's u.item: the same rule (first genre, lowercased) on its genre flags.
    const genres = new Map<string, string>();
    for (const [id, { categories }] of loadMovieTitles(file)) {
      const first = categories[0]?.toLowerCase().replace(/\s+/g, "-");
      if (first !== undefined) genres.set(id, first);
    }
    return genres;
  }
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
