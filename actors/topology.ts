import { buckets as BUCKETS, kvKeyOf, subjects } from "./subjects.js";
import type { PortTopology } from "./stage-adapter.js";
import { sendLate, type LateCounter } from "./watermark.js";
import type { popularityStage } from "./popularity.js";
import type { watermarkStage } from "./watermark.js";
import type { windowStage } from "./window.js";
import type { interestStage } from "./interest-ranking.js";
import type { historyStage } from "./history-stage.js";

/**
 * KV key of the popularity table's heartbeat row, whose `wm` carries partition 0's progress. Every
 * table moves its watermark on (table.wm is the highest `wm` of any row it applied) even when no
 * row changes, e.g. when only time passes, so GetRecommendations reports the watermark its answer
 * reflects.
 */
export const POPULARITY_HEARTBEAT_KEY = "wm.0";

/** The KV bucket trending writes its top lists and heartbeats to (until it has ports). */
export const TRENDING_BUCKET = BUCKETS.trending;

/**
 * The composition: where each port of each stage goes (hop subjects, raw subjects, KV buckets).
 * Stages written to the contract (runtime/stage.ts) name ports only: this maps them to addresses.
 * (parse and trending still name their subjects themselves.)
 */
export const stageTopology = {
  // The candidate source stages (RANKER=blend) have no outputs: serving reads their state.
  history: {} satisfies PortTopology<typeof historyStage.ports>,
  watermark: (p: number, counters?: LateCounter): PortTopology<typeof watermarkStage.ports> => ({
    window: subjects.watermark(p),
    late: {
      batch: (lates, out) => {
        for (const l of lates) sendLate(out, "watermark", "user", l.watermark, l.event);
        counters?.late("watermark", lates.length, "user");
      },
    },
  }),
  window: (p: number): PortTopology<typeof windowStage.ports> => ({ window: subjects.window(p) }),
  interestRanking: (p: number): PortTopology<typeof interestStage.ports> => ({
    profiles: subjects.interestRanking(p),
  }),
  popularity: (counters?: LateCounter): PortTopology<typeof popularityStage.ports> => ({
    table: (row, out) => out.kvPut(BUCKETS.popularity, kvKeyOf(row.item), row),
    heartbeat: (row, out) => out.kvPut(BUCKETS.popularity, POPULARITY_HEARTBEAT_KEY, row),
    late: (l, out) => {
      sendLate(out, "popularity", "popularity", l.watermark, l.event);
      counters?.late("popularity", 1, "popularity");
    },
  }),
};
