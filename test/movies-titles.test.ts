import { afterAll, describe, expect, it } from "vitest";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { loadMovieTitles, MoviesCatalogError } from "../bin/replay/movies-titles.js";
import { loadMoviesCatalog } from "../bin/replay/movies-catalog.js";
import { isMoviesCsv } from "../bin/config-values.js";

/*
 * The movies preset's catalogue base: titles and every genre, from MovieLens latest's movies.csv
 * or ml-100k's u.item (Latin-1, genre flags named by u.genre beside it).
 */

const dirs: string[] = [];
afterAll(async () => {
  for (const d of dirs) await rm(d, { recursive: true, force: true });
});

const U_ITEM = [
  "1|Toy Story (1995)|01-Jan-1995||http://us.imdb.com/M/title-exact?Toy%20Story%20(1995)|0|0|0|1|1|1|0|0|0|0|0|0|0|0|0|0|0|0|0",
  "2|GoldenEye (1995)|01-Jan-1995||http://x|0|1|1|0|0|0|0|0|0|0|0|0|0|0|0|0|1|0|0",
  "3|Un air de famille (Caf\xe9) (1996)|01-Jan-1996||http://x|1|0|0|0|0|0|0|0|0|0|0|0|0|0|0|0|0|0|0",
].join("\n");

describe("the movies file's titles", () => {
  it("reads movies.csv: titles (quoted ones too) and every genre", () => {
    const data = resolve(import.meta.dirname, "..", "..", "shared", "data", "ml-latest-small");
    const t = loadMovieTitles(join(data, "movies.csv"));
    expect(t.get("1")).toEqual({
      title: "Toy Story (1995)",
      categories: ["Adventure", "Animation", "Children", "Comedy", "Fantasy"],
    });
    expect(t.get("11")?.title).toBe("American President, The (1995)");
    expect(t.size).toBeGreaterThan(9000);
  });

  it("reads u.item with u.genre's names, Latin-1 titles, and no 'unknown' genre", async () => {
    const dir = await mkdtemp(join(tmpdir(), "reco-uitem-"));
    dirs.push(dir);
    const file = join(dir, "u.item");
    await writeFile(file, Buffer.from(U_ITEM, "latin1"));
    const genres = ["unknown|0", "Action|1", "Adventure|2", "Animation|3", "Kids|4", "Comedy|5"];
    const more = ["Crime", "Documentary", "Drama", "Fantasy", "Film-Noir", "Horror", "Musical"];
    const rest = ["Mystery", "Romance", "Sci-Fi", "Thriller", "War", "Western"];
    const names = [...genres, ...[...more, ...rest].map((g, k) => `${g}|${k + 6}`)];
    await writeFile(join(dir, "u.genre"), names.join("\n") + "\n");
    const t = loadMovieTitles(file);
    expect(t.get("1")).toEqual({
      title: "Toy Story (1995)",
      categories: ["Animation", "Kids", "Comedy"],
    });
    expect(t.get("2")).toEqual({
      title: "GoldenEye (1995)",
      categories: ["Action", "Adventure", "Thriller"],
    });
    expect(t.get("3")).toEqual({ title: "Un air de famille (Café) (1996)", categories: [] });
    // The preset's categories from the same file: the first genre, lowercased.
    expect([...loadMoviesCatalog(file)]).toEqual([
      ["1", "animation"],
      ["2", "action"],
    ]);
    expect(isMoviesCsv(file)).toBe(true);
  });

  it("refuses a file that is neither", async () => {
    const dir = await mkdtemp(join(tmpdir(), "reco-uitem-"));
    dirs.push(dir);
    const file = join(dir, "x.csv");
    await writeFile(file, "a,b,c\n1,2,3\n");
    expect(() => loadMovieTitles(file)).toThrow(MoviesCatalogError);
    expect(isMoviesCsv(file)).toBe(false);
  });
});
