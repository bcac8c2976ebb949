import { join, resolve } from "node:path";
import { readLog, type LogEvent } from "../../bin/eval/log.js";
import { createArms } from "../../actors/quality/index.js";
import { designRankerFor } from "../../actors/plan/index.js";
import type { ParsedRecord } from "../../actors/contract/index.js";
import type { PrequentialSettings } from "../../actors/stages/index.js";
import { defaultBlend, defaultSourceSettings, MOVIES } from "../../actors/sources/index.js";
import { createStageState, type StageStateInternal } from "../../state/index.js";

/**
 * The first ratings of MovieLens (ml-latest-small in ../shared/data) as parse's records, and the
 * prequential scorer's settings on them (design and blend arms, no ALS): what the prequential
 * tests score, alone and inside the covisit stage.
 */

const root = resolve(import.meta.dirname, "../..");

/** The movies preset's sources without the ALS ones (no trainings in a unit test). */
export const movieSources = {
  ...defaultSourceSettings(MOVIES),
  implicit: undefined,
  explicit: undefined,
};

export const movieScoring: PrequentialSettings = {
  preset: MOVIES,
  sources: movieSources,
  blend: defaultBlend(MOVIES),
  arms: createArms([
    { name: "design", share: 50, ranker: "design" },
    { name: "blend", share: 50, ranker: "blend" },
  ]),
  design: designRankerFor("movies"),
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

/** The state as a restart loads it: every map's entries through JSON, in a fresh state. */
export function reloadThroughJson(state: StageStateInternal): StageStateInternal {
  const fresh = createStageState();
  for (const [name, entries] of state.allMaps())
    for (const [k, v] of entries) fresh.loadMapEntry(name, k, JSON.parse(JSON.stringify(v)));
  return fresh;
}
