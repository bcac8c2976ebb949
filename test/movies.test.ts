import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createStageState } from "../state/store.js";
import type { StageOutput } from "../actors/host/index.js";
import type { ParsedRecord } from "../actors/contract/index.js";
import { createParseHandler } from "../actors/plan/index.js";
import { loadMoviesCatalog, MoviesCatalogError } from "../bin/replay/movies-catalog.js";
import type { Preset } from "../actors/contract/index.js";
import { ConfigError, loadConfig } from "../bin/config.js";
import { loadGenres } from "../bin/replay/text-files.js";
import { moviesCatalog } from "./helpers/events.js";

/*
 * In the movies preset, genres from a MovieLens movies.csv catalogue
 * (MOVIES_CATALOG) play the role of categories: an event without category_code gets its movie's
 * first genre, lowercased. The catalogue as parse loads it, the handler, and the setting. The
 * pipeline's answers by genre are compared with the reference in
 * test/reference-compare-movies.test.ts.
 */

let dir: string;
const file = (name: string) => join(dir, name);
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), "reco-movies-"));
  await writeFile(
    file("movies.csv"),
    "\uFEFFmovieId,title,genres\r\n" +
      "1,Toy Story (1995),Adventure|Animation|Children|Comedy|Fantasy\r\n" +
      '11,"American President, The (1995)",Comedy|Drama|Romance\r\n' +
      "31,Dangerous Minds (1995),Drama\r\n" +
      "99,Unknown (2001),(no genres listed)\r\n" +
      "\r\n" +
      "102,Film Noir Thing (1947),Film-Noir|Crime\r\n",
  );
  await writeFile(file("ratings.csv"), "userId,movieId,rating,timestamp\n1,1,4.0,964982703\n");
  await writeFile(file("empty.csv"), "");
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

describe("the movies catalogue (loadMoviesCatalog)", () => {
  it("maps each movie to its first genre, lowercased, as reco replay --movies does", async () => {
    const genres = loadMoviesCatalog(file("movies.csv"));
    expect(Object.fromEntries(genres)).toEqual({
      "1": "adventure",
      "11": "comedy",
      "31": "drama",
      "102": "film-noir",
    });
    // The same rule as the replay tool's, on the same file.
    expect(genres).toEqual(await loadGenres(file("movies.csv")));
  });

  it("refuses a file that is not a movies.csv, or that cannot be read", () => {
    expect(() => loadMoviesCatalog(file("ratings.csv"))).toThrow(MoviesCatalogError);
    expect(() => loadMoviesCatalog(file("empty.csv"))).toThrow(/movieId,title,genres/);
    expect(() => loadMoviesCatalog(file("missing.csv"))).toThrow(/cannot read/);
  });

  it("reads the generated catalogue of the reference comparison as the reference does", async () => {
    const c = moviesCatalog(120, ["drama", "comedy", "action"]);
    await writeFile(file("generated.csv"), c.csv);
    expect(loadMoviesCatalog(file("generated.csv"))).toEqual(c.genres);
  });
});

describe("parse with a movies catalogue", () => {
  const enc = new TextEncoder();
  const run = (preset: Preset, events: Record<string, unknown>[]) => {
    const emits: ParsedRecord[] = [];
    const out: StageOutput = {
      emit: (subject, r) =>
        void (subject.startsWith("reco.parse.") && emits.push(r as ParsedRecord)),
      touch: () => undefined,
      setProgress: () => undefined,
      raw: () => undefined,
      kvPut: () => undefined,
      count: () => undefined,
    };
    const h = createParseHandler(createStageState(), out, {
      partitions: 2,
      preset,
      dedupeHorizonMs: 93_600_000,
      dedupeMaxIds: 1000,
      maxEventBytes: 65_536,
      broadcastEveryMs: 100,
      genres: new Map([
        ["1", "adventure"],
        ["11", "comedy"],
      ]),
    });
    events.forEach((e, k) =>
      h.handle(
        {
          seq: k + 1,
          subject: `events.${String(e.event_type)}`,
          data: enc.encode(JSON.stringify(e)),
          headers: {},
        },
        0,
      ),
    );
    return emits.map((r) => [r.i, r.t, r.c]);
  };
  let n = 0;
  const rating = (movie: number, r: number, extra: Record<string, unknown> = {}) => ({
    event_id: `00000000-0000-4000-8000-${String(++n).padStart(12, "0")}`,
    event_type: "rating",
    event_ts: 964_982_703_000 + n,
    user_id: 7,
    movie_id: movie,
    rating: r,
    ...extra,
  });

  it("gives a rating without category_code its movie's genre; a purchase if 4 or more", () => {
    expect(run("movies", [rating(1, 4.5), rating(11, 2), rating(5, 5)])).toEqual([
      ["1", "purchase", "adventure"],
      ["11", "rating", "comedy"],
      ["5", "purchase", ""], // not in the catalogue
    ]);
  });

  it("keeps a category_code the event carries", () => {
    expect(run("movies", [rating(1, 3, { category_code: "classics.old" })])).toEqual([
      ["1", "rating", "classics"],
    ]);
  });

  it("gives other events of a catalogued movie its genre too", () => {
    const view = { ...rating(11, 1), event_type: "view", rating: undefined };
    expect(run("movies", [view])).toEqual([["11", "view", "comedy"]]);
  });

  it("ignores the catalogue outside the movies preset", () => {
    expect(run("ecommerce", [rating(1, 5)])).toEqual([["1", "rating", ""]]);
  });
});

describe("MOVIES_CATALOG and IDLE_TIMEOUT_MS settings", () => {
  const errorOf = (env: Record<string, string>): string => {
    try {
      loadConfig(env);
    } catch (err) {
      expect(err).toBeInstanceOf(ConfigError);
      return (err as Error).message;
    }
    throw new Error("no ConfigError");
  };

  it("takes a movies.csv with PRESET=movies", () => {
    const cfg = loadConfig({ PRESET: "movies", MOVIES_CATALOG: file("movies.csv") });
    expect(cfg.pipeline.moviesCatalog).toBe(file("movies.csv"));
    expect(loadConfig({}).pipeline.moviesCatalog).toBeUndefined();
  });

  it("refuses it without PRESET=movies, missing, or not a movies.csv, naming the setting", () => {
    expect(errorOf({ MOVIES_CATALOG: file("movies.csv") })).toMatch(
      /^MOVIES_CATALOG is set but PRESET=ecommerce: expected PRESET=movies/,
    );
    expect(errorOf({ PRESET: "movies", MOVIES_CATALOG: file("missing.csv") })).toMatch(
      /^MOVIES_CATALOG=".*missing\.csv" is not valid: expected the path of a readable file \(no such file\)/,
    );
    expect(errorOf({ PRESET: "movies", MOVIES_CATALOG: file("ratings.csv") })).toMatch(
      /^MOVIES_CATALOG=".*ratings\.csv" is not valid: expected a MovieLens movies\.csv \(header movieId,title,genres\)/,
    );
    expect(errorOf({ PRESET: "movies", MOVIES_CATALOG: dir })).toMatch(/not a regular file/);
  });

  it("defaults IDLE_TIMEOUT_MS to 30 s; 0 turns idle markers off; negative is refused", () => {
    expect(loadConfig({}).pipeline.idleTimeoutMs).toBe(30_000);
    expect(loadConfig({ IDLE_TIMEOUT_MS: "0" }).pipeline.idleTimeoutMs).toBe(0);
    expect(loadConfig({}, { IDLE_TIMEOUT_MS: "500" }).pipeline.idleTimeoutMs).toBe(500);
    expect(errorOf({ IDLE_TIMEOUT_MS: "-1" })).toMatch(/^IDLE_TIMEOUT_MS=-1 is out of range/);
    expect(errorOf({ IDLE_TIMEOUT_MS: "30s" })).toMatch(
      /^IDLE_TIMEOUT_MS="30s" is not valid: expected a whole number of milliseconds/,
    );
  });
});
