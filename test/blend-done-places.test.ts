import { describe, expect, it } from "vitest";
import { blendAnswer } from "../actors/serving/index.js";
import {
  createRecommender,
  defaultBlend,
  defaultSourceSettings,
  MOVIES,
  type SourceEvent,
} from "../actors/sources/index.js";

const DAY = 86_400_000;
const FILMS = 150;

/**
 * A heavy rater who rated the 120 most rated films: the catalogue-wide lists' first 100 places
 * (trending, popular) are all films they rated, which serving never returns. Those places must
 * go to films they have not rated, or the answer runs dry.
 */
function heavyRater() {
  const settings = defaultSourceSettings(MOVIES);
  const rec = createRecommender(MOVIES, settings);
  const rate = (u: string, film: number, ts: number): SourceEvent => ({
    u,
    i: `film-${film}`,
    t: "rating",
    ts,
    c: "Drama",
    r: 4,
  });
  let ts = Date.parse("2026-01-01T00:00:00Z");
  // Film f is rated by FILMS - f users, in rounds (round u rates every film f < FILMS - u), a
  // rating a day apart from the next (no co-visitation): the lower f, the more and the later
  // its ratings, so trending and popular both rank the films by f.
  for (let u = 0; u < FILMS; u++)
    for (let f = 0; f < FILMS - u; f++) rec.add(rate(`fan-${u}-${f}`, f, (ts += DAY)));
  const rated = new Set<string>();
  for (let f = 0; f < 120; f++) {
    rec.add(rate("heavy", f, (ts += DAY)));
    rated.add(`film-${f}`);
  }
  const view = {
    recommender: () => rec,
    progress: () => ts,
    touched: (u: string) => (u === "heavy" ? rated : undefined),
    categoryOf: () => "Drama",
  };
  return { view, rated };
}

describe("serving a heavy rater: done items take no place in a source's list", () => {
  it("fills the answer with the most rated films the user has not rated", () => {
    const { view, rated } = heavyRater();
    const answer = blendAnswer(view, defaultBlend(MOVIES), () => undefined, "heavy", 10, undefined);
    const items = answer.items.map((x) => x.itemId);
    expect(items.filter((i) => rated.has(i))).toEqual([]);
    expect(items).toHaveLength(10);
    expect(items[0]).toBe("film-120");
    expect(answer.items[0]!.source).toBe("TRENDING");
  });

  it("with exclude_touched, the same", () => {
    const { view } = heavyRater();
    const answer = blendAnswer(view, defaultBlend(MOVIES), () => undefined, "heavy", 10, {
      excludeTouched: true,
    });
    expect(answer.items.map((x) => x.itemId)[0]).toBe("film-120");
    expect(answer.items).toHaveLength(10);
  });
});
