import type { Observable } from "rxjs";
import {
  BackendUnavailableError,
  type RecoBackend,
  type Recommendations,
  type TrendingSnapshot,
  type TrendingWindowName,
} from "../connectors/grpc/backend.js";
import { joinCandidates } from "./popularity-join.js";
import { completeRecommendations } from "./fallback.js";
import type { PopularityTable } from "./popularity-table.js";
import type { TrendingHub } from "./trending-hub.js";
import type { ProfileReplica } from "./profile-replica.js";

export interface GatewayOptions {
  table: PopularityTable;
  hub: TrendingHub;
  replica: ProfileReplica;
  userOutOfOrdernessMs: number;
  interestHorizonMs: number;
  fallbackSize: number;
  /** Refuse answers from a replica further behind than this (ms): UNAVAILABLE instead. */
  maxStalenessMs: number;
}

/**
 * The backend of a gateway process (role `gateway`): the same join and fallback as a worker's
 * fallback[p], over a replica of every partition's profiles, so answers do not depend on which
 * worker owns a partition right now. Each answer reports the replica's staleness bound.
 */
export function createGatewayBackend(o: GatewayOptions): RecoBackend {
  return {
    isReady: () => o.table.initialised && o.replica.caughtUp,
    async getRecommendations(userId, n): Promise<Recommendations> {
      if (!o.table.initialised || !o.replica.caughtUp)
        throw new BackendUnavailableError(
          "gateway is loading the profile replica and the popularity table",
        );
      const staleness = o.replica.stalenessMs();
      if (staleness > o.maxStalenessMs)
        throw new BackendUnavailableError(
          `the profile replica is ${Math.round(staleness)} ms behind (limit ${o.maxStalenessMs} ms)`,
        );
      const profile = o.replica.profile(userId);
      const now = Math.max(o.table.wm, profile?.wm ?? -1);
      const personalised = profile
        ? joinCandidates(profile, o.table, now, o.interestHorizonMs, n)
        : [];
      const watermark = now >= 0 ? now - o.userOutOfOrdernessMs : -1;
      return {
        ...completeRecommendations(userId, n, personalised, profile, o.table, watermark, {
          size: o.fallbackSize,
          score: 0.1,
        }),
        stalenessMs: staleness,
      };
    },
    trending(window: TrendingWindowName): Observable<TrendingSnapshot> {
      return o.hub.updates(window);
    },
  };
}
