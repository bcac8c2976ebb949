import { subjects } from "./subjects.js";
import type { PortTopology } from "./stage-adapter.js";
import type { windowStage } from "./window.js";
import type { interestStage } from "./interest-ranking.js";

/**
 * The composition: where each port of each stage goes (hop subjects, raw subjects, KV buckets).
 * Stages name ports only; this is the one place that maps them to addresses.
 */
export const stageTopology = {
  window: (p: number): PortTopology<typeof windowStage.ports> => ({ window: subjects.window(p) }),
  interestRanking: (p: number): PortTopology<typeof interestStage.ports> => ({
    profiles: subjects.interestRanking(p),
  }),
};
