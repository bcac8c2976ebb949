import {
  BackendUnavailableError,
  type Recommendations,
  type RecommendedItem,
} from "../connectors/grpc/backend.js";
import { createActor, type Actor } from "../runtime/index.js";
import type { ProfileRecord } from "./interest-ranking.js";
import type { Candidate, JoinHandler, PopularityTableView } from "./popularity-join.js";

export interface FallbackOptions {
  /** Size of the overall popular list (DESIGN: top 10). */
  size: number;
  /** Score given to fallback items (DESIGN: 0.1). */
  score: number;
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
  const taken = new Set<string>();
  for (const c of personalised) {
    if (items.length >= n) break;
    taken.add(c.row.item);
    items.push(toItem(c.row, c.score, "PERSONALIZED", items.length + 1));
  }
  if (items.length < n) {
    // The fallback list is the overall top, recent purchases included: DESIGN §3.6 promises a
    // non-empty answer once any purchase has been seen, and excludes purchases only from the
    // personalised candidates.
    for (const row of table.top(opts.size)) {
      if (items.length >= n) break;
      if (taken.has(row.item)) continue;
      taken.add(row.item);
      items.push(toItem(row, opts.score, "POPULAR_FALLBACK", items.length + 1));
    }
  }
  let statusMessage = "";
  if (items.length === 0) statusMessage = "no purchases seen yet: nothing to recommend";
  else if (personalised.length === 0)
    statusMessage = profile
      ? "no personalised candidates: popular fallback"
      : "unknown user: popular fallback";
  return {
    userId: user,
    items,
    topCategories: (profile?.top ?? []).map(([category, interest]) => ({ category, interest })),
    watermark: watermark >= 0 ? watermark : null,
    statusMessage,
  };
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

/**
 * fallback[p]: the serving actor of partition p. Queries go through its mailbox, one at a time,
 * so an answer never sees a half-applied batch; it joins the user's profile with the popularity
 * table and completes the list from the overall top. When roles are split, the same actor
 * answers request-reply over NATS for the gateway.
 */
export function createFallbackActor(o: FallbackActorOptions): Actor<RecommendRequest> {
  return createActor<RecommendRequest>({
    id: `fallback/${o.partition}`,
    behavior: {
      receive(req) {
        const join = o.join();
        if (!join || !o.table.initialised) {
          req.done(
            new BackendUnavailableError(
              `partition ${o.partition} is not serving yet (starting or restarting)`,
            ),
          );
          return;
        }
        req.done(
          answerFor(req.userId, req.n, join.profile(req.userId), o.table, o, (_p, now) =>
            join.candidates(req.userId, o.table, now, req.n),
          ),
        );
      },
    },
  });
}
