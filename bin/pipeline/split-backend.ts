import { Counter, type Registry } from "prom-client";
import {
  BackendUnavailableError,
  type RecentEvent,
  type RecoBackend,
  type Recommendations,
  type SimilarItems,
} from "../../actors/contract/index.js";
import type { Arm } from "../../actors/quality/index.js";
import type { BlendReplica } from "../../actors/serving/index.js";
import type { PopularityRow } from "../../actors/stages/index.js";

export interface SplitBackendOptions {
  /** The serving process's design answers, trending and items (bin/pipeline/gateway.ts). */
  replica: RecoBackend;
  /**
   * The replica of the blend's source stages (actors/serving/blend-replica.ts), fed by the ingest
   * process; undefined when nothing blends (RANKER=design without a blending A/B arm).
   */
  blend: BlendReplica | undefined;
  /** Whether a user without an A/B arm gets the blend (RANKER=blend). */
  blendByDefault: boolean;
  /** The user's A/B arm (ARMS): which ranker answers; the answer names it. */
  armOf?: (user: string) => Arm;
  /** The popularity table's rows and version (the gateway's replica of it). */
  row: (item: string) => PopularityRow | undefined;
  rowsVersion: () => number;
  /** The user's top categories from the profile replica, as the design answer gives them. */
  topCategories: (user: string) => Recommendations["topCategories"] | undefined;
  now?: () => number;
  registry?: Registry;
}

/**
 * The backend of a split `reco start` (SERVE_PROCESS=1): the serving process runs no stage, so
 * answers never wait behind ingest's event loop. Every answer comes from replicas in this
 * process: the design ranking, trending, item rows and the same-category stand-in for similar
 * items from the gateway's (popularity table, trending hub, every partition's profiles); the
 * blend (RANKER=blend, the default, or a blending A/B arm), similar items by co-visitation and a
 * user's recent items from the replica of the blend's source stages that the ingest process
 * feeds (actors/serving/blend-replica.ts): the same answer as one process gives for the same state, with
 * the replica's staleness (how long since it last had everything the ingest process had). While
 * the replica has no sources yet (its read of their snapshots under way at a start, or a dump
 * when that read failed), blended requests get the design ranking instead: its items say so by
 * their sources (PERSONALIZED / POPULAR_FALLBACK) and
 * `reco_serving_answers_total{from="replica_fallback"}` counts them.
 */
export function createSplitBackend(o: SplitBackendOptions): RecoBackend {
  const now = o.now ?? Date.now;
  const counter = new Counter({
    name: "reco_serving_answers_total",
    help: "Answers of the serving process (SERVE_PROCESS=1) by where they came from: blend (the replica of the blend's source stages), replica (the design ranking: RANKER=design or a design A/B arm), replica_fallback (a blended request while the blend's replica has not received the sources once: the design ranking instead)",
    labelNames: ["method", "from"] as const,
    registers: o.registry ? [o.registry] : [],
  });
  const counts = {
    blend: counter.labels("recommend", "blend"),
    replica: counter.labels("recommend", "replica"),
    fallback: counter.labels("recommend", "replica_fallback"),
  };
  const blend = o.blend;
  const recommendNow: NonNullable<RecoBackend["recommendNow"]> = (userId, n, options) => {
    const arm = o.armOf?.(userId);
    const named = (r: Recommendations) => (arm ? { ...r, arm: arm.name } : r);
    const wantsBlend = blend !== undefined && (arm ? arm.ranker === "blend" : o.blendByDefault);
    if (wantsBlend && blend.isReady()) {
      const answer = blend.answer(userId, n, options, o.row, arm?.blend, o.rowsVersion());
      if (answer) {
        counts.blend.inc();
        // The blend has no interest profile of its own: the top categories are the design
        // stages' (bin/pipeline/serving.ts does the same in one process).
        const top = o.topCategories(userId);
        // ANSWER_MAX_AGE_MS: a kept answer's own staleness (its age and its view's lag then).
        const staleness = Math.max(blend.stalenessMs(now()), answer.stalenessMs ?? 0);
        return named({
          ...answer,
          ...(top ? { topCategories: top } : {}),
          ...(staleness > 0 ? { stalenessMs: staleness } : {}),
        });
      }
    }
    const design = o.replica.recommendNow!(userId, n, options)!;
    (wantsBlend ? counts.fallback : counts.replica).inc();
    return named(design);
  };
  return {
    isReady: () => o.replica.isReady(),
    recommendNow,
    async getRecommendations(userId, n, _signal, options): Promise<Recommendations> {
      return recommendNow(userId, n, options)!;
    },
    trending: (w) => o.replica.trending(w),
    ...(o.replica.item ? { item: o.replica.item } : {}),
    similarItems(itemId, n): SimilarItems | Promise<SimilarItems> {
      const similar = blend?.isReady() ? blend.similar(itemId, n, o.row) : undefined;
      return similar ?? o.replica.similarItems!(itemId, n);
    },
    ...(blend && o.blendByDefault
      ? {
          recentEvents(userId: string, n: number): RecentEvent[] {
            const recent = blend.isReady() ? blend.recent(userId, n) : undefined;
            if (!recent)
              throw new BackendUnavailableError(
                "the history source has not reached the serving process yet",
              );
            return recent;
          },
        }
      : {}),
  };
}
