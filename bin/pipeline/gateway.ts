import type { Observable } from "rxjs";
import {
  BackendUnavailableError,
  hasOptions,
  MAX_COUNT,
  type RecommendOptions,
  type RecoBackend,
  type Recommendations,
  type TrendingSnapshot,
  type TrendingWindowName,
} from "../../actors/contract/index.js";
import type { NatsConnection } from "nats";
import { createSupervisor, type Supervisor } from "../../runtime/index.js";
import {
  joinCandidates,
  answerFor,
  topCategoriesOf,
  createPopularityTable,
  type PopularityTable,
} from "../../actors/stages/index.js";
import {
  createTrendingHub,
  type TrendingHub,
  createProfileReplica,
  type ProfileReplica,
  createCatalogueTable,
  type CatalogueTable,
  itemInfo,
  similarByCategory,
  filterDesign,
} from "../../actors/serving/index.js";
import { createPopularityTableActor } from "../../connectors/nats/popularity-watch.js";
import { createTrendingHubActor } from "../../connectors/nats/trending-watch.js";
import { createProfileReplicaActor } from "../../connectors/nats/profile-watch.js";
import { createCatalogueTableActor } from "../../connectors/nats/catalogue-watch.js";
import { catalogueBase } from "./catalogue-base.js";
import type { PipelineConfig } from "./config.js";

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
 * It answers with the design ranking whatever RANKER says: the recommender stage's state lives
 * in the worker that owns p0 and has no replica yet (the request options filter that ranking).
 */
export function createGatewayBackend(o: GatewayOptions): RecoBackend {
  // All in memory: answered in place, within the gRPC request's own task.
  const recommendNow = (userId: string, n: number, options?: RecommendOptions): Recommendations => {
    if (hasOptions(options))
      return filterDesign(answer(userId, MAX_COUNT, options.exclude), n, options);
    return answer(userId, n);
  };
  const answer = (userId: string, n: number, exclude?: ReadonlySet<string>): Recommendations => {
    if (!o.table.initialised || !o.replica.caughtUp)
      throw new BackendUnavailableError(
        "gateway is loading the profile replica and the popularity table",
      );
    const staleness = o.replica.stalenessMs();
    if (staleness > o.maxStalenessMs)
      throw new BackendUnavailableError(
        `the profile replica is ${Math.round(staleness)} ms behind (limit ${o.maxStalenessMs} ms)`,
      );
    const result = answerFor(
      userId,
      n,
      o.replica.profile(userId),
      o.table,
      {
        size: o.fallbackSize,
        score: 0.1,
        userOutOfOrdernessMs: o.userOutOfOrdernessMs,
        ...(exclude !== undefined ? { exclude } : {}),
      },
      (profile, now) => joinCandidates(profile, o.table, now, o.interestHorizonMs, n),
    );
    return { ...result, stalenessMs: staleness };
  };
  return {
    isReady: () => o.table.initialised && o.replica.caughtUp,
    recommendNow,
    async getRecommendations(userId, n, _signal, options): Promise<Recommendations> {
      return recommendNow(userId, n, options);
    },
    trending(window: TrendingWindowName): Observable<TrendingSnapshot> {
      return o.hub.updates(window);
    },
    similarItems: (itemId, n) => similarByCategory(itemId, n, o.table, o.table.row),
    item: (itemId) => itemInfo(o.table.row(itemId)),
  };
}

export interface GatewayProcess {
  readonly backend: RecoBackend;
  /** The popularity table's replica (rows and version: what blended answers read of it). */
  readonly table: PopularityTable;
  /**
   * The item catalogue's replica. The backend above answers without it: whoever serves wraps its
   * final backend once (actors/serving/catalogue-backend.ts), so no answer is filtered twice.
   */
  readonly catalogue: CatalogueTable;
  /** The user's top categories from the profile replica (undefined: not known yet). */
  topCategories(user: string): Recommendations["topCategories"] | undefined;
  readonly supervisor: Supervisor;
  stop(): Promise<void>;
}

/**
 * Everything a gateway process runs besides gRPC: the popularity table, the trending hub and the
 * profile replica, each a supervised actor fed from JetStream.
 */
export async function startGateway(
  nc: NatsConnection,
  cfg: PipelineConfig & { maxStalenessMs: number },
  log?: (obj: object, msg: string) => void,
  /** Called with the user of every profile the replica applies. */
  onProfile?: (user: string) => void,
): Promise<GatewayProcess> {
  const supervisor = createSupervisor({
    id: "gateway",
    restart: { count: 20, period: 60_000, delay: 100, maxDelay: 5_000 },
    onEscalate: (err, child) => log?.({ err: String(err), child }, "gateway actor escalated"),
  });
  const table = createPopularityTable();
  const hub = createTrendingHub({
    partitions: cfg.partitions,
    weights: cfg.trendingWeights,
    triggerMs: cfg.trendingTriggerMs,
    oneHourOutOfOrdernessMs: cfg.trendingHourOutOfOrdernessMs,
    oneDayOutOfOrdernessMs: cfg.trendingDayOutOfOrdernessMs,
  });
  const replica = createProfileReplica(Date.now, onProfile);
  supervisor.supervise("popularity-table", () => createPopularityTableActor(nc, table));
  supervisor.supervise("trending-hub", () =>
    createTrendingHubActor(nc, hub, Math.min(250, cfg.trendingTriggerMs)),
  );
  supervisor.supervise("profile-replica", () => createProfileReplicaActor(nc, replica));
  const catalogue = createCatalogueTable(catalogueBase(cfg));
  supervisor.supervise("catalogue-table", () => createCatalogueTableActor(nc, catalogue));
  supervisor.events$.subscribe((e) => {
    if (e.type === "child-failed")
      log?.({ child: e.childId, err: String(e.error) }, "gateway actor failed");
  });
  await supervisor.ready();
  return {
    supervisor,
    table,
    catalogue,
    topCategories: (user) =>
      replica.caughtUp ? topCategoriesOf(replica.profile(user)) : undefined,
    backend: createGatewayBackend({
      table,
      hub,
      replica,
      userOutOfOrdernessMs: cfg.userOutOfOrdernessMs,
      interestHorizonMs: cfg.interestHorizonMs,
      fallbackSize: cfg.fallbackSize,
      maxStalenessMs: cfg.maxStalenessMs,
    }),
    stop: () => supervisor.stop(),
  };
}
