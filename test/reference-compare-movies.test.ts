import { describe, expect, it } from "vitest";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { generateRatingsLog, moviesCatalog } from "./helpers/events.js";
import { DEFAULT_REF, reference } from "./helpers/reference.js";
import {
  differences,
  expectedAnswers,
  expectedPopularity,
  H,
  T0,
} from "./helpers/reference-scenario.js";
import {
  observeAnswers,
  observePopularity,
  publish,
  settle,
  startTestApp,
} from "./helpers/reference-runs.js";

/*
 * The movies preset (ratings of 4 or more are purchases) against the plain reference
 * (test/helpers/reference.ts) at 3 partitions: every user's recommendations and top categories
 * and the popularity table must equal the reference's, with the categories in the ratings and
 * with genres from a movies.csv catalogue for ratings without them.
 */

describe("the movies preset at 3 partitions", () => {
  it("serves the reference's answers and popularity when a rating of 4 or more is a purchase", async () => {
    const log = generateRatingsLog({
      seed: 31,
      events: 1500,
      users: 80,
      movies: 120,
      genres: ["drama", "comedy", "action", "thriller", "animation"],
      start: T0,
      spanMs: 30 * H,
    });
    const ref = reference(log, { ...DEFAULT_REF, preset: "movies" });
    // Both kinds of rating occur, and some users have personalised answers.
    expect(ref.popularity().length).toBeGreaterThan(20);
    expect(ref.users().some((u) => ref.recommend(u, 10)[0]?.source === "PERSONALIZED")).toBe(true);
    const t = await startTestApp(3, { PRESET: "movies" });
    try {
      await publish(t.nc, log);
      const expected = expectedAnswers(ref);
      const users = Object.keys(expected);
      const actual = await settle(() => observeAnswers(t.client, users), expected);
      expect(differences(expected, actual)).toEqual([]);
      const popularity = await settle(() => observePopularity(t.nc), expectedPopularity(ref));
      expect(popularity).toEqual(expectedPopularity(ref));
    } finally {
      await t.stop();
    }
  });
});

describe("the movies preset with a movies.csv catalogue (MOVIES_CATALOG) at 3 partitions", () => {
  it("serves recommendations by genre as the reference computes them, for ratings without category_code", async () => {
    const genres = ["drama", "comedy", "action", "thriller", "animation"];
    const catalog = moviesCatalog(120, genres);
    const log = generateRatingsLog({
      seed: 32,
      events: 1500,
      users: 80,
      movies: 120,
      genres,
      start: T0,
      spanMs: 30 * H,
      withCategory: false,
    });
    expect(log.every((e) => e.category_code === undefined)).toBe(true);
    const ref = reference(log, { ...DEFAULT_REF, preset: "movies", genres: catalog.genres });
    // The genres are the categories: users have top genres and personalised answers by genre,
    // and some popular movies have no genre (no genres listed).
    const withTop = ref.users().filter((u) => ref.topCategories(u).length > 0);
    expect(withTop.length).toBeGreaterThan(40);
    expect(new Set(withTop.map((u) => ref.topCategories(u)[0]![0]))).toEqual(new Set(genres));
    expect(ref.users().some((u) => ref.recommend(u, 10)[0]?.source === "PERSONALIZED")).toBe(true);
    expect(ref.popularity().some((p) => p.category === "")).toBe(true);
    const dir = await mkdtemp(join(tmpdir(), "reco-movies-"));
    const file = join(dir, "movies.csv");
    await writeFile(file, catalog.csv);
    const t = await startTestApp(3, { PRESET: "movies", MOVIES_CATALOG: file });
    try {
      await publish(t.nc, log);
      const expected = expectedAnswers(ref);
      const users = Object.keys(expected);
      const actual = await settle(() => observeAnswers(t.client, users), expected);
      expect(differences(expected, actual)).toEqual([]);
      const popularity = await settle(() => observePopularity(t.nc), expectedPopularity(ref));
      expect(popularity).toEqual(expectedPopularity(ref));
    } finally {
      await t.stop();
      await rm(dir, { recursive: true, force: true });
    }
  });
});
