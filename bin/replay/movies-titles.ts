import { existsSync, readFileSync } from "node:fs";
import { dirname, join } from "node:path";
import type { BaseFields } from "../../actors/contract/index.js";
import { isHeader, MOVIELENS_MOVIES_COLUMNS, splitCsvLine } from "./formats.js";

/**
 * The movies preset's titles and genres (the catalogue's base layer): from MovieLens latest's
 * `movies.csv` (`movieId,title,genres`, genres `|`-separated) or ml-100k's `u.item`
 * (`id|title|release date|video date|url|` then 19 genre flags, Latin-1), whose genre names come
 * from `u.genre` beside it (ml-100k's own list when that file is missing).
 */

/** Raised when MOVIES_CATALOG cannot be read as a MovieLens `movies.csv` or `u.item`. */
export class MoviesCatalogError extends Error {
  override name = "MoviesCatalogError";
}

/** ml-100k's genres in flag order, as its `u.genre` lists them. */
const ML100K_GENRES = [
  "unknown", "Action", "Adventure", "Animation", "Children's", "Comedy", "Crime", "Documentary",
  "Drama", "Fantasy", "Film-Noir", "Horror", "Musical", "Mystery", "Romance", "Sci-Fi",
  "Thriller", "War", "Western",
]; // prettier-ignore

/** Whether a file's first line is a `u.item` row (no header: an id, then `|`-separated fields). */
export const isUItemLine = (line: string): boolean => /^\d+\|[^|]*\|/.test(line);

/** Genre names of `u.genre` (`name|index` lines), ordered by index. */
function uGenres(file: string): string[] {
  if (!existsSync(file)) return ML100K_GENRES;
  const names: string[] = [];
  for (const line of readFileSync(file, "latin1").split(/\r?\n/)) {
    const [name, index] = line.split("|");
    if (name && index !== undefined && /^\d+$/.test(index)) names[Number(index)] = name;
  }
  return names.length > 0 ? names : ML100K_GENRES;
}

/** Reads `movies.csv` or `u.item`: movie id -> title and genres (without "(no genres listed)"). */
export function loadMovieTitles(file: string): Map<string, BaseFields> {
  let text: string;
  try {
    text = readFileSync(file, "utf8");
  } catch (err) {
    throw new MoviesCatalogError(`cannot read the movies catalogue ${file}`, { cause: err });
  }
  text = text.replace(/^\uFEFF/, "");
  const lines = text.split(/\r?\n/);
  const out = new Map<string, BaseFields>();
  if (isUItemLine(lines[0] ?? "")) {
    const names = uGenres(join(dirname(file), "u.genre"));
    for (const line of readFileSync(file, "latin1").split(/\r?\n/)) {
      const f = line.split("|");
      if (f.length < 6 || !/^\d+$/.test(f[0]!)) continue;
      const flags = f.slice(5);
      const categories = flags.flatMap((v, k) =>
        v === "1" && names[k] !== undefined && names[k] !== "unknown" ? [names[k]!] : [],
      );
      out.set(f[0]!, { title: f[1]!, categories });
    }
    return out;
  }
  const head = splitCsvLine(lines[0] ?? "");
  if (!head.ok || !isHeader(head.fields, MOVIELENS_MOVIES_COLUMNS))
    throw new MoviesCatalogError(
      `${file} is neither a MovieLens movies.csv (header ${MOVIELENS_MOVIES_COLUMNS.join(",")}) nor an ml-100k u.item`,
    );
  for (let k = 1; k < lines.length; k++) {
    const split = splitCsvLine(lines[k]!);
    if (!split.ok || split.fields.length !== 3) continue;
    const [id, title, genres] = split.fields as [string, string, string];
    if (id === "") continue;
    const categories = genres
      .split("|")
      .map((g) => g.trim())
      .filter((g) => g !== "" && !g.startsWith("("));
    out.set(id, { title, categories });
  }
  return out;
}
