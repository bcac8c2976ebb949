import type { NatsConnection } from "nats";
import type { Supervisor } from "../../runtime/index.js";
import {
  BackendUnavailableError,
  hasOptions,
  MAX_COUNT,
  type RecommendOptions,
  type RecoBackend,
  type Recommendations,
  type TrendingSnapshot,
  type TrendingWindowName,
  partitionOf,
} from "../../actors/contract/index.js";
import type { Observable } from "rxjs";
import type { JoinHandler } from "../../actors/stages/index.js";
import type { StageHandler } from "../../actors/host/index.js";
import {
  createFallbackActor,
  topCategoriesOf,
  type FallbackActor,
  createPopularityTable,
} from "../../actors/stages/index.js";
import {
  designTaken,
  filterDesign,
  createTrendingHub,
  itemInfo,
  similarByCategory,
  createCatalogueTable,
  type CatalogueTable,
  withCatalogue,
} from "../../actors/serving/index.js";
import type { RankerWiring } from "../../actors/plan/index.js";
import type { Arm } from "../../actors/quality/index.js";
import { createPopularityTableActor } from "../../connectors/nats/popularity-watch.js";
import { createTrendingHubActor } from "../../connectors/nats/trending-watch.js";
import { createCatalogueTableActor } from "../../connectors/nats/catalogue-watch.js";
import { catalogueBase } from "./catalogue-base.js";
import type { PipelineConfig } from "./config.js";
import type { Units } from "./units.js";

export interface ServingOptions {
  nc: NatsConnection;
  supervisor: Supervisor;
  units: Units;
  ranker: RankerWiring;
  /**
   * The handler serving reads for a stage instance: the running one, or while it restarts the
   * incarnation before it (pipeline.ts); undefined when none is here.
   */
  servable: (id: string) => StageHandler | undefined;
  /** The user's A/B arm (ARMS): which ranker answers; the answer names it. */
  armOf?: (user: string) => Arm;
  /** Run the serving actors (popularity table, trending hub, fallback per partition). */
  serve: boolean;
}

export interface Serving {
  readonly backend: RecoBackend;
  /** The item catalogue this process serves from (its KV bucket's replica). */
  readonly catalogue: CatalogueTable;
  /** Answers once every actor of the pipeline runs; not while it stops. */
  setRunning(running: boolean): void;
  /** The design ranking's top `n` for a user as served; undefined while its stage cannot answer. */
  designTop(userId: string, n: number): string[] | undefined;
  /** Whether the design's answer for a user may already count their event of `item` at `ts`. */
  designTaken(userId: string, item: string, ts: number): boolean;
}

/**
 * The serving side: the popularity table and trending hub fed from their KV buckets, a fallback
 * actor per partition (in the partition's unit), and the backend the gRPC and HTTP façades call.
 */
export function startServing(cfg: PipelineConfig, o: ServingOptions): Serving {
  const { supervisor, units, ranker, serve } = o;
  const P = cfg.partitions;
  let running = false;
  const table = createPopularityTable();
  if (serve)
    supervisor.supervise("popularity-table", () => createPopularityTableActor(o.nc, table));
  const catalogue = createCatalogueTable(catalogueBase(cfg));
  if (serve)
    supervisor.supervise("catalogue-table", () => createCatalogueTableActor(o.nc, catalogue));
  for (let p = 0; p < P; p++) {
    if (!serve) break;
    // Built once: join() runs per GetRecommendations call.
    const joinId = `popularity-join/${p}`;
    units.register(`p${p}`, `fallback/${p}`, () =>
      supervisor.supervise(`fallback/${p}`, () =>
        createFallbackActor({
          partition: p,
          join: () => o.servable(joinId) as JoinHandler | undefined,
          table,
          userOutOfOrdernessMs: cfg.userOutOfOrdernessMs,
          size: cfg.fallbackSize,
          score: 0.1,
          interestHorizonMs: cfg.interestHorizonMs,
        }),
      ),
    );
  }
  const hub = createTrendingHub({
    partitions: P,
    weights: cfg.trendingWeights,
    triggerMs: cfg.trendingTriggerMs,
    oneHourOutOfOrdernessMs: cfg.trendingHourOutOfOrdernessMs,
    oneDayOutOfOrdernessMs: cfg.trendingDayOutOfOrdernessMs,
  });
  if (serve)
    supervisor.supervise("trending-hub", () =>
      createTrendingHubActor(o.nc, hub, Math.min(250, cfg.trendingTriggerMs)),
    );

  // fallback[p] answers in place (see FallbackActor.answer): no mailbox round trip, and the
  // gRPC façade answers within the request's own task (RecoBackend.recommendNow).
  const fallbackIds = Array.from({ length: P }, (_, p) => `fallback/${p}`);
  /** The user's top categories as the design answer gives them; undefined when it cannot. */
  const designTopCategories = (userId: string): Recommendations["topCategories"] | undefined => {
    const p = partitionOf(userId, P);
    const fallback = supervisor.child(fallbackIds[p]!) as FallbackActor | undefined;
    if (fallback?.getStatus() !== "running") return;
    const handler = o.servable(`popularity-join/${p}`) as JoinHandler | undefined;
    if (!handler || !table.initialised) return;
    return topCategoriesOf(handler.profile(userId));
  };
  const recommendNow = (userId: string, n: number, options?: RecommendOptions): Recommendations => {
    // A/B arms: the user's arm says which ranker answers, and the answer names it.
    const arm = o.armOf?.(userId);
    const named = (r: Recommendations) => (arm ? { ...r, arm: arm.name } : r);
    if (running && (arm ? arm.ranker === "blend" : true)) {
      const blended = ranker.answer(userId, n, options, table.row, arm?.blend, table.version);
      if (blended) {
        // The blend has no interest profile of its own: the top categories are the design
        // stages' (interest-ranking's 24 h profile), as RANKER=design answers them, read from
        // the profile alone (a whole design answer for them cost more than a memoised blend).
        const top = designTopCategories(userId);
        return named(top ? { ...blended, topCategories: top } : blended);
      }
    }
    const p = partitionOf(userId, P);
    const actor = supervisor.child(fallbackIds[p]!) as FallbackActor | undefined;
    const answer =
      running && actor
        ? hasOptions(options)
          ? filterDesign(actor.answer(userId, MAX_COUNT, options!.exclude), n, options!)
          : actor.answer(userId, n)
        : new BackendUnavailableError(`partition ${p} is not serving yet (starting or restarting)`);
    if (answer instanceof BackendUnavailableError) throw answer;
    return named(answer);
  };
  /** The design ranking's top `n` as served (what an arm ranking by the design answers). */
  const designTop = (userId: string, n: number): string[] | undefined => {
    const p = partitionOf(userId, P);
    const actor = supervisor.child(fallbackIds[p]!) as FallbackActor | undefined;
    if (!running || actor?.getStatus() !== "running") return undefined;
    const answer = actor.answer(userId, n);
    return answer instanceof BackendUnavailableError
      ? undefined
      : answer.items.map((x) => x.itemId);
  };
  const backend: RecoBackend = {
    isReady: () => running && table.initialised,
    recommendNow,
    async getRecommendations(userId, n, _signal, options): Promise<Recommendations> {
      return recommendNow(userId, n, options);
    },
    trending(window: TrendingWindowName): Observable<TrendingSnapshot> {
      return hub.updates(window);
    },
    similarItems: (itemId, n) =>
      ranker.similar(itemId, n, table.row) ?? similarByCategory(itemId, n, table, table.row),
    item: (itemId) => itemInfo(table.row(itemId)),
    // The history source remembers each user's items (RANKER=blend); the design stages keep
    // counts per category only, so without the blend the façade answers 501.
    ...(cfg.ranker === "blend"
      ? {
          recentEvents: (userId: string, n: number) => {
            const recent = ranker.recent(userId, n);
            if (!recent) throw new BackendUnavailableError("the history stage is not running yet");
            return recent;
          },
        }
      : {}),
  };

  return {
    backend: withCatalogue(backend, catalogue),
    catalogue,
    designTop,
    designTaken(userId, item, ts) {
      const join = o.servable(`popularity-join/${partitionOf(userId, P)}`) as
        JoinHandler | undefined;
      return designTaken(table.row(item), join?.profile(userId), item, ts);
    },
    setRunning: (r) => void (running = r),
  };
}
