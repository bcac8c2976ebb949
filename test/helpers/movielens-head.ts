import { join, resolve } from "node:path";
import { readLog, type LogEvent } from "../../bin/eval/log.js";
import { createArms } from "../../actors/quality/index.js";
import type { ParsedRecord } from "../../actors/contract/index.js";
import type { PrequentialSettings, ServeFn } from "../../actors/stages/index.js";
import {
  createCovisit,
  createPopular,
  createTrending,
  defaultBlend,
  defaultSourceSettings,
  MOVIES,
  readsOf,
  sourceEventOf,
} from "../../actors/sources/index.js";
import { createDesignDriver, DESIGN_DEFAULTS } from "../../actors/plan/index.js";

/**
 * The first ratings of MovieLens (ml-latest-small in ../shared/data) as parse's records, and the
 * prequential scorer's settings on them (design and blend arms, no ALS): what the prequential
 * tests score.
 */

const root = resolve(import.meta.dirname, "../..");

/** The movies preset's sources without the ALS ones (no trainings in a unit test). */
export const movieSources = {
  ...defaultSourceSettings(MOVIES),
  implicit: undefined,
  explicit: undefined,
};

/** The scorer's settings without what it reads (`serve`, `design`: the test's). */
export const movieScoring: PrequentialSettings = {
  preset: MOVIES,
  blend: defaultBlend(MOVIES),
  arms: createArms([
    { name: "design", share: 50, ranker: "design" },
    { name: "blend", share: 50, ranker: "blend" },
  ]),
};

/** The log's first `n` events, in its order. */
export async function movieLensHead(n: number): Promise<LogEvent[]> {
  return (await readLog(join(root, "../shared/data/ml-latest-small"))).events.slice(0, n);
}

/** Events `from` to `to` as parse's records: sequence numbers and the watermark before each. */
export function recordsOf(events: readonly LogEvent[], from: number, to: number): ParsedRecord[] {
  let wb = -1;
  for (let x = 0; x < from; x++) wb = Math.max(wb, events[x]!.ts);
  return events.slice(from, to).map((e, x) => {
    const r = { ...e, s: from + x + 1, wb };
    wb = Math.max(wb, e.ts);
    return r;
  });
}

/**
 * Pushes records into a started stage in batches of uneven sizes (1, 7, 49, 52, ...: the sizes
 * must not matter), each with its input position.
 */
export function pushUneven(
  run: {
    push(input: {
      records: ParsedRecord[];
      position: { from: number; upTo: number };
      progress: { from: number; to: number };
    }): void;
  },
  recs: readonly ParsedRecord[],
): void {
  for (let x = 0, size = 1; x < recs.length; x += size, size = (size * 7) % 97) {
    const batch = recs.slice(x, x + size);
    run.push({
      records: batch,
      position: { from: batch[0]!.s - 1, upTo: batch[batch.length - 1]!.s },
      progress: { from: -1, to: -1 },
    });
  }
}

/**
 * What serving reads besides a user's history, fed the whole of `events` once and then held
 * still: co-visitation, the counters and the design ranking. Scored against these, a case's
 * answer is a function of the scoring stage's history alone, so a plain loop can check it.
 */
export function frozenServing(events: readonly LogEvent[]) {
  const item = {
    covisit: createCovisit({ preset: MOVIES, ...movieSources.covisit }),
    trending: createTrending({
      halfLifeMs: movieSources.trending.halfLifeMs,
      all: movieSources.trending.all,
    }),
    popular: createPopular(MOVIES.isTarget, movieSources.popularHalfLifeMs),
  };
  let now = -1;
  for (const r of recordsOf(events, 0, events.length)) {
    const e = sourceEventOf(r, MOVIES);
    item.covisit.add(e);
    item.trending.add(e);
    item.popular.add(e);
    now = Math.max(now, e.ts);
  }
  item.covisit.flush();
  const driver = createDesignDriver({ preset: "movies", ...DESIGN_DEFAULTS });
  driver.feed(events);
  const design = (user: string, n: number) => driver.answer(user, n).items.map((x) => x.itemId);
  const serve: ServeFn = (user, history) => {
    const t = history.touched(user);
    return {
      reads: readsOf({ history, ...item }, movieSources),
      now,
      touched: t.size > 0 ? t : undefined,
      collaborative: false,
    };
  };
  return { item, now, design, serve };
}
