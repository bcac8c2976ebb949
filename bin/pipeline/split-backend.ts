import { Counter, type Registry } from "prom-client";
import {
  BackendUnavailableError,
  type RecentEvent,
  type RecoBackend,
  type Recommendations,
  type SimilarItems,
} from "../../actors/backend.js";

/** Asks the ingest process (bin/ingest-child.ts) a question its stages' state answers. */
export type AskIngest = (op: string, args: unknown[], timeoutMs: number) => Promise<unknown>;

export interface SplitBackendOptions {
  /** The serving process's own answers, from replicas (bin/pipeline/gateway.ts). */
  replica: RecoBackend;
  ask: AskIngest;
  /**
   * Whether answers need the ingest process's state: RANKER=blend, or A/B arms. The blend's
   * sources (history, co-visitation, collaborative) have no replica in the serving process yet.
   */
  forward: boolean;
  /**
   * How long a request waits for the ingest process's blended answer before the replica's
   * design answer is served instead (it is running at a lower priority, and may be busy).
   */
  waitMs: number;
  /** Questions in flight to the ingest process at most; beyond that, the replica answers. */
  maxInFlight: number;
  registry?: Registry;
}

/**
 * The backend of a split `reco start` (SERVE_PROCESS=1): the serving process runs no stage, so
 * answers never wait behind ingest's event loop. The design ranking (RANKER=design), trending,
 * item rows and the same-category stand-in for similar items come from the replicas in this
 * process (popularity table, trending hub, every partition's profiles), each answer carrying the
 * replica's staleness as a gateway's does.
 *
 * The blend (RANKER=blend, the default) reads the source stages' state, which lives only in the
 * ingest process: each blended request is forwarded there over the IPC channel and served as it
 * answers (the same answer as `reco start` in one process gives). When the ingest process does not
 * answer within `waitMs` (busy, restarting, or too many questions already in flight), the request
 * is served the design ranking from the replica instead: its items say so by their sources
 * (PERSONALIZED / POPULAR_FALLBACK instead of HISTORY, SIMILAR_ITEMS, ...) and
 * `reco_serving_answers_total{from="replica_fallback"}` counts them. Similar items without an
 * answer fall back to the same-category stand-in (its `basis` says so); recent events have no
 * stand-in (UNAVAILABLE).
 */
export function createSplitBackend(o: SplitBackendOptions): RecoBackend {
  const counter = new Counter({
    name: "reco_serving_answers_total",
    help: "Answers of the serving process (SERVE_PROCESS=1) by where they came from: ingest (forwarded to the ingest process: the blend), replica (the replicas in the serving process: RANKER=design), replica_fallback (the ingest process did not answer in time: the replica's design ranking instead)",
    labelNames: ["method", "from"] as const,
    registers: o.registry ? [o.registry] : [],
  });
  const counts = {
    ingest: counter.labels("recommend", "ingest"),
    replica: counter.labels("recommend", "replica"),
    fallback: counter.labels("recommend", "replica_fallback"),
  };
  let inFlight = 0;
  const ask = async <T>(op: string, args: unknown[]): Promise<T | undefined> => {
    if (inFlight >= o.maxInFlight) return undefined;
    inFlight++;
    try {
      return (await o.ask(op, args, o.waitMs)) as T;
    } catch (err) {
      // The ingest process's own answer (UNAVAILABLE while its stages start, say) stands.
      if (err instanceof Error && "errorName" in err) {
        if (err.errorName === "BackendUnavailableError") return undefined;
        throw new Error(err.message);
      }
      return undefined;
    } finally {
      inFlight--;
    }
  };
  const replicaAnswer = (...a: Parameters<NonNullable<RecoBackend["recommendNow"]>>) =>
    o.replica.recommendNow!(...a)!;
  return {
    isReady: () => o.replica.isReady(),
    recommendNow(userId, n, options) {
      if (o.forward) return undefined;
      const answer = replicaAnswer(userId, n, options);
      counts.replica.inc();
      return answer;
    },
    async getRecommendations(userId, n, signal, options): Promise<Recommendations> {
      if (!o.forward) {
        counts.replica.inc();
        return replicaAnswer(userId, n, options);
      }
      const blended = await ask<Recommendations>("recommend", [userId, n, options]);
      if (blended) {
        counts.ingest.inc();
        return blended;
      }
      if (signal.aborted) throw new BackendUnavailableError("the request was cancelled");
      counts.fallback.inc();
      return replicaAnswer(userId, n, options);
    },
    trending: (w) => o.replica.trending(w),
    ...(o.replica.item ? { item: o.replica.item } : {}),
    async similarItems(itemId, n): Promise<SimilarItems> {
      const similar = o.forward ? await ask<SimilarItems>("similar", [itemId, n]) : undefined;
      return similar ?? o.replica.similarItems!(itemId, n);
    },
    ...(o.forward
      ? {
          async recentEvents(userId: string, n: number): Promise<RecentEvent[]> {
            const recent = await ask<RecentEvent[]>("recent", [userId, n]);
            if (!recent)
              throw new BackendUnavailableError(
                "the ingest process (the history source) did not answer in time",
              );
            return recent;
          },
        }
      : {}),
  };
}
