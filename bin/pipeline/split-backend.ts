import { Counter, type Registry } from "prom-client";
import {
  BackendUnavailableError,
  hasOptions,
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
  /**
   * Blended answers kept (per user and n, requests without options): served at once while no
   * older than `keptMaxAgeMs`, each with its age as staleness, and refreshed in the background.
   */
  keptAnswers: number;
  keptMaxAgeMs: number;
  /** Background refreshes in flight at most: the ingest process's work for them is bounded. */
  maxRefreshes: number;
  now?: () => number;
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
 * ingest process: a blended request is forwarded there over the IPC channel and served as it
 * answers (the same answer as `reco start` in one process gives), and that answer is kept. A user
 * asked again is served the kept answer at once while it is at most `keptMaxAgeMs` old, its age
 * reported as `stalenessMs` (as a gateway reports its replica's), and a refresh is asked for
 * behind it (one per answer, `maxRefreshes` at most in all, so a busy ingest process is not
 * flooded): serving never waits for ingest for a user it has answered lately. When the ingest
 * process does not answer a request without a young kept answer within `waitMs` (busy,
 * restarting, or too many questions already in flight), the design ranking from the replica
 * answers instead: its items say so by their sources (PERSONALIZED / POPULAR_FALLBACK instead of
 * HISTORY, SIMILAR_ITEMS, ...) and `reco_serving_answers_total{from="replica_fallback"}` counts
 * them. Similar items without an
 * answer fall back to the same-category stand-in (its `basis` says so); recent events have no
 * stand-in (UNAVAILABLE).
 */
/** How long a question to the ingest process may take before its answer is given up. */
const ASK_TIMEOUT_MS = 10_000;

/**
 * No answer from the ingest process (none runs, it did not answer in time, or it answered
 * UNAVAILABLE while its stages start): undefined. Any other error it threw stands.
 */
function unavailable(err: unknown): undefined {
  if (err instanceof Error && "errorName" in err && err.errorName !== "BackendUnavailableError")
    throw new Error(err.message);
  return undefined;
}

export function createSplitBackend(o: SplitBackendOptions): RecoBackend & {
  /**
   * The user's events changed what the stages hold (their profile moved in the replica): the
   * answers kept for them are dropped, so their next request asks the ingest process again.
   */
  userChanged(user: string): void;
} {
  const now = o.now ?? Date.now;
  const counter = new Counter({
    name: "reco_serving_answers_total",
    help: "Answers of the serving process (SERVE_PROCESS=1) by where they came from: ingest (forwarded to the ingest process: the blend), replica (the replicas in the serving process: RANKER=design), kept (the ingest process's blended answer kept from an earlier request, at most SERVE_BLEND_MAX_AGE_MS old), replica_fallback (the ingest process did not answer in time: the replica's design ranking instead); from=refresh counts the background refreshes of kept answers asked of the ingest process",
    labelNames: ["method", "from"] as const,
    registers: o.registry ? [o.registry] : [],
  });
  const counts = {
    ingest: counter.labels("recommend", "ingest"),
    kept: counter.labels("recommend", "kept"),
    replica: counter.labels("recommend", "replica"),
    fallback: counter.labels("recommend", "replica_fallback"),
    refreshes: counter.labels("recommend", "refresh"),
  };
  /** The ingest process's last blended answer per user and n, with when it came. */
  const kept = new Map<string, { answer: Recommendations; at: number }>();
  let refreshing = 0;
  /** The n of the answers kept (a handful): what userChanged drops. */
  const keptNs = new Set<number>();
  const keep = (key: string, answer: Recommendations) => {
    kept.delete(key); // re-inserted last: the oldest entries go first
    if (kept.size >= o.keptAnswers) kept.delete(kept.keys().next().value!);
    kept.set(key, { answer, at: now() });
  };
  let inFlight = 0;
  /**
   * The ingest process's blended answer for a request without options, asked once per user and n
   * at a time and kept when it comes, even after the request that asked stopped waiting for it
   * (the next request then finds it): a busy ingest process's answers are not thrown away.
   */
  const fetching = new Map<string, Promise<Recommendations | undefined>>();
  const fetchKept = (key: string, userId: string, n: number) => {
    const running = fetching.get(key);
    if (running) return running;
    if (inFlight >= o.maxInFlight) return Promise.resolve(undefined);
    inFlight++;
    const p = o
      .ask("recommend", [userId, n], ASK_TIMEOUT_MS)
      .then((answer) => {
        keptNs.add(n);
        keep(key, answer as Recommendations);
        return answer as Recommendations;
      }, unavailable)
      .finally(() => {
        inFlight--;
        fetching.delete(key);
      });
    fetching.set(key, p);
    return p;
  };
  /** A kept answer young enough to serve (and a refresh started), or undefined. */
  const fromKept = (userId: string, n: number): Recommendations | undefined => {
    const key = `${userId}\n${n}`;
    const k = o.keptMaxAgeMs > 0 ? kept.get(key) : undefined;
    if (!k) return undefined;
    const age = now() - k.at;
    if (age > o.keptMaxAgeMs) return undefined;
    if (!fetching.has(key) && refreshing < o.maxRefreshes) {
      refreshing++;
      counts.refreshes.inc();
      void fetchKept(key, userId, n)
        .catch(() => undefined)
        .finally(() => refreshing--);
    }
    counts.kept.inc();
    return age > 0 ? { ...k.answer, stalenessMs: age } : k.answer;
  };
  const ask = async <T>(op: string, args: unknown[]): Promise<T | undefined> => {
    if (inFlight >= o.maxInFlight) return undefined;
    inFlight++;
    try {
      return (await o.ask(op, args, o.waitMs)) as T;
    } catch (err) {
      return unavailable(err);
    } finally {
      inFlight--;
    }
  };
  /** At most `waitMs` of `p`; undefined after that. */
  const within = <T>(p: Promise<T | undefined>) =>
    new Promise<T | undefined>((resolve, reject) => {
      const t = setTimeout(() => resolve(undefined), o.waitMs);
      p.then(
        (v) => (clearTimeout(t), resolve(v)),
        (err: unknown) => (clearTimeout(t), reject(err)),
      );
    });
  const replicaAnswer = (...a: Parameters<NonNullable<RecoBackend["recommendNow"]>>) =>
    o.replica.recommendNow!(...a)!;
  return {
    isReady: () => o.replica.isReady(),
    recommendNow(userId, n, options) {
      if (o.forward) return hasOptions(options) ? undefined : fromKept(userId, n);
      const answer = replicaAnswer(userId, n, options);
      counts.replica.inc();
      return answer;
    },
    userChanged(user) {
      for (const n of keptNs) kept.delete(`${user}\n${n}`);
    },
    async getRecommendations(userId, n, signal, options): Promise<Recommendations> {
      if (!o.forward) {
        counts.replica.inc();
        return replicaAnswer(userId, n, options);
      }
      const withOptions = hasOptions(options);
      if (!withOptions) {
        const k = fromKept(userId, n);
        if (k) return k;
      }
      const blended = withOptions
        ? await ask<Recommendations>("recommend", [userId, n, options])
        : await within(fetchKept(`${userId}\n${n}`, userId, n));
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
