import {
  BackendUnavailableError,
  type Recommendations,
  type RecommendedItem,
} from "../contract/index.js";
import { createActor, type Actor } from "../../runtime/index.js";
import type { ProfileRecord } from "./interest-ranking.js";
import {
  isEmptyProfile,
  type Candidate,
  type JoinHandler,
  type PopularityTableView,
} from "./popularity-join.js";

export interface FallbackOptions {
  /** Size of the overall popular list (DESIGN: top 10). */
  size: number;
  /** Score given to fallback items (DESIGN: 0.1). */
  score: number;
  /** INTEREST_HORIZON_MS, named in the status of a user whose history is older. Default 24 h. */
  interestHorizonMs?: number;
  /**
   * Items never to list (hidden in the catalogue, excluded by the request): the overall list is
   * then the top `size` of the others, so a hidden best seller leaves room for the next one.
   */
  exclude?: ReadonlySet<string>;
}

/**
 * fallback: completes an answer. A user with no personalised candidates, or an unknown user,
 * gets the top products by purchases overall (ties by item id) with score 0.1 and source
 * POPULAR_FALLBACK; a user with fewer than `n` personalised items gets the rest from that list.
 */
export function completeRecommendations(
  user: string,
  n: number,
  personalised: Candidate[],
  profile: ProfileRecord | undefined,
  table: PopularityTableView,
  watermark: number,
  opts: FallbackOptions,
): Recommendations {
  const items: RecommendedItem[] = [];
  for (const c of personalised) {
    if (items.length >= n) break;
    items.push(toItem(c.row, c.score, "PERSONALIZED", items.length + 1));
  }
  if (items.length < n) {
    // The fallback list is the overall top, recent purchases included: DESIGN §3.6 promises a
    // non-empty answer once any purchase has been seen, and excludes purchases only from the
    // personalised candidates.
    const personalisedCount = items.length;
    const skip = opts.exclude;
    let taken = 0;
    for (const row of table.top(opts.size + (skip?.size ?? 0))) {
      if (items.length >= n || taken >= opts.size) break;
      if (skip?.has(row.item)) continue;
      taken++;
      // Top rows are distinct items, so only the personalised ones can repeat. At most `size`
      // rows against fewer than `n` items: a scan, where a Set per call showed in profiles.
      if (listed(items, personalisedCount, row.item)) continue;
      items.push(toItem(row, opts.score, "POPULAR_FALLBACK", items.length + 1));
    }
  }
  let statusMessage = "";
  if (items.length === 0) statusMessage = "no purchases seen yet: nothing to recommend";
  else if (personalised.length === 0)
    statusMessage = isEmptyProfile(profile)
      ? `history older than the ${hours(opts.interestHorizonMs ?? 86_400_000)} horizon: popular fallback`
      : profile
        ? "no personalised candidates: popular fallback"
        : "unknown user: popular fallback";
  return {
    userId: user,
    items,
    topCategories: topCategoriesOf(profile),
    watermark: watermark >= 0 ? watermark : null,
    statusMessage,
  };
}

/** A profile's top categories as an answer lists them (none without a profile). */
export function topCategoriesOf(
  profile: ProfileRecord | undefined,
): Recommendations["topCategories"] {
  return (profile?.top ?? []).map(([category, interest]) => ({ category, interest }));
}

/** 86400000 → "24 h"; 5400000 → "1.5 h". */
function hours(ms: number): string {
  return `${Number((ms / 3_600_000).toFixed(2))} h`;
}

function listed(items: readonly RecommendedItem[], count: number, item: string): boolean {
  for (let i = 0; i < count; i++) if (items[i]!.itemId === item) return true;
  return false;
}

function toItem(
  row: { item: string; category: string; brand: string; avgPrice: number; purchases: number },
  score: number,
  source: RecommendedItem["source"],
  rank: number,
): RecommendedItem {
  return {
    itemId: row.item,
    score,
    rank,
    category: row.category,
    brand: row.brand,
    averagePrice: row.avgPrice,
    source,
    purchases: row.purchases,
  };
}

/**
 * The answer for one user, wherever it is computed (a worker's fallback[p], a gateway over its
 * replica): personalised candidates joined at `now` (the newest event time the table or the
 * profile reflects), then the fill from the overall top.
 */
export function answerFor(
  user: string,
  n: number,
  profile: ProfileRecord | undefined,
  table: PopularityTableView,
  o: FallbackOptions & { userOutOfOrdernessMs: number },
  candidates: (profile: ProfileRecord, now: number) => Candidate[],
): Recommendations {
  const now = Math.max(table.wm, profile?.wm ?? -1);
  const personalised = profile ? candidates(profile, now) : [];
  const watermark = now >= 0 ? now - o.userOutOfOrdernessMs : -1;
  return completeRecommendations(user, n, personalised, profile, table, watermark, o);
}

/** A query to a fallback actor; the answer (or why there is none) goes to `done`. */
export interface RecommendRequest {
  userId: string;
  n: number;
  done(result: Recommendations | BackendUnavailableError): void;
}

export interface FallbackActorOptions extends FallbackOptions {
  partition: number;
  /** The live popularity-join handler of the same partition, if it is running. */
  join(): JoinHandler | undefined;
  table: PopularityTableView & { readonly initialised: boolean };
  userOutOfOrdernessMs: number;
}

/** The serving actor of a partition, which can also answer in place (see `answer`). */
export interface FallbackActor extends Actor<RecommendRequest> {
  /**
   * The answer the actor would give to a `RecommendRequest` now, computed synchronously without
   * the mailbox round trip (no promise, no microtask, nothing queued): what the gRPC façade calls
   * per request. Safe outside the mailbox because the join handler and the popularity table
   * apply each batch synchronously, so a read between two tasks never sees half a batch, exactly
   * like a read inside `receive`. "Not serving" (a `BackendUnavailableError`, returned, not
   * thrown) unless this actor is running, its partition's popularity-join is running (not
   * restoring, restarting or handed over) and the table is initialised.
   */
  answer(
    userId: string,
    n: number,
    exclude?: ReadonlySet<string>,
  ): Recommendations | BackendUnavailableError;
}

/**
 * fallback[p]: the serving actor of partition p. Its lifecycle is the partition's serving
 * lifecycle (supervised, restarted, stopped with the partition's unit); queries sent through its
 * mailbox are answered one at a time, and `answer` gives the same answer in place. It joins the
 * user's profile with the popularity table and completes the list from the overall top.
 */
export function createFallbackActor(o: FallbackActorOptions): FallbackActor {
  const notServing = () =>
    new BackendUnavailableError(
      `partition ${o.partition} is not serving yet (starting or restarting)`,
    );
  const compute = (
    userId: string,
    n: number,
    exclude?: ReadonlySet<string>,
  ): Recommendations | BackendUnavailableError => {
    const join = o.join();
    if (!join || !o.table.initialised) return notServing();
    const opts = exclude === undefined ? o : { ...o, exclude };
    return answerFor(userId, n, join.profile(userId), o.table, opts, (_p, now) =>
      join.candidates(userId, o.table, now, n),
    );
  };
  const actor = createActor<RecommendRequest>({
    id: `fallback/${o.partition}`,
    behavior: {
      receive(req) {
        req.done(compute(req.userId, req.n));
      },
    },
  });
  return Object.assign(actor, {
    answer: (userId: string, n: number, exclude?: ReadonlySet<string>) =>
      actor.getStatus() === "running" ? compute(userId, n, exclude) : notServing(),
  });
}
