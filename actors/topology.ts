import { subjects } from "./subjects.js";
import type { PortTopology } from "./stage-adapter.js";
import type { windowStage } from "./window.js";

/**
 * The composition: where each port of each stage goes (hop subjects, raw subjects, KV buckets).
 * Stages name ports only; this is the one place that maps them to addresses.
 */
export const stageTopology = {
  window: (p: number): PortTopology<typeof windowStage.ports> => ({ window: subjects.window(p) }),
};
