import {
  hasOptions,
  type RecentEvent,
  type RecommendOptions,
  type Recommendations,
  type SimilarItems,
} from "../contract/index.js";
import type { PopularityRow } from "../stages/index.js";
import { blendAnswer, covisitSimilar } from "./recommender-serve.js";
import type { RecommenderView } from "./recommender-view.js";
import { createAnswerMemo } from "./recommender-memo.js";
import type { BlendSettings, CollaborativeServing, HistorySource } from "../sources/index.js";

/** Answers kept (one per user, n and blend settings): ~1 KB each. */
const MEMO_ANSWERS = 32_768;
/**
 * Event time a kept answer's clock may lag the sources' progress. Idle, parse's markers move
 * progress every few seconds without data: an answer at a newer clock differs only by the
 * decay's last bits (every source's scores decay alike and the blend normalises them) and by
 * items whose "done" time ran out, so an answer of the same data up to 10 min older, served with
 * its own watermark, is the answer as of that watermark. 10 min is the user path's allowed
 * out-of-orderness (DESIGN §3.2): the clock is not known closer than that anyway. (60 s made
 * bench step 4 at load 15 compute most answers again: a round of 12.8k users took minutes.)
 */
const MEMO_MAX_LAG_MS = 10 * 60_000;

/**
 * Blended answers over the source stages' views, wherever those live: the stages themselves
 * (actors/plan/recommender-wiring.ts) or their replica in a serving process (actors/serving/blend-replica.ts).
 * One code path, so both give the same answer for the same state.
 */
export interface BlendAnswers {
  /** The blend's answer; undefined while its sources cannot answer. */
  answer(
    userId: string,
    n: number,
    options: RecommendOptions | undefined,
    row: (item: string) => PopularityRow | undefined,
    /** An A/B arm's blend settings (actors/quality/arms.ts); absent: the preset's. */
    blend?: BlendSettings,
    /**
     * Version of what `row` reads (the popularity table's): with it, an answer asked again
     * before anything it reads changed is the one computed before (recommender-memo.ts).
     */
    rowsVersion?: number,
  ): Recommendations | undefined;
  /**
   * Blended answers served from the memo, and computed (requests without options); `aged`: of
   * the hits, those served by ANSWER_MAX_AGE_MS although what they read had changed.
   */
  readonly memo: { hits: number; misses: number; aged: number };
}

export function createBlendAnswers(o: {
  /** The preset's blend settings. */
  blend: BlendSettings;
  /** The composed view for a user; undefined while a source it needs is not there. */
  view(user: string): RecommenderView | undefined;
  /** The collaborative source (its served models are part of an answer's stamp). */
  collaborative(): CollaborativeServing | undefined;
  /**
   * Changes of the sources' data so far (any change forgets every kept answer), or, with
   * `userVersion`, of the data every user's answer reads (covisit, the models).
   */
  changes(): number;
  /**
   * Changes of what only this user's answer reads (their history and their collaborative row),
   * as a number that moves when they change: a kept answer of the user serves while it is the
   * same. Absent: `changes` counts every change.
   */
  userVersion?: (user: string) => number;
  /**
   * ANSWER_MAX_AGE_MS: bounded staleness, off (0) by default. Above 0, an answer computed at most
   * this long ago is served again although what it read changed since, with its `stalenessMs`
   * saying how old its view may be (its age, plus `staleness` when it was computed). Under a
   * heavy ingest every part of the exact stamp changes within a second, so no exact answer is
   * ever asked again and each costs a fresh blend (~0.3-1 ms of CPU; bench step 4b).
   */
  maxAgeMs?: number;
  /** How stale the sources read are now (a replica's lag), ms; absent: 0. */
  staleness?: () => number;
  /** Wall clock of the answers' ages (ms); default Date.now. */
  now?: () => number;
}): BlendAnswers {
  const memo = createAnswerMemo<{ answer: Recommendations; user: number }>(MEMO_ANSWERS);
  const counts = { hits: 0, misses: 0, aged: 0 };
  const maxAgeMs = o.maxAgeMs ?? 0;
  const clock = o.now ?? Date.now;
  /** ANSWER_MAX_AGE_MS > 0: answers by memo key with when they were computed (LRU order). */
  const aged = new Map<
    string,
    {
      answer: Recommendations;
      user: number;
      stamp: readonly unknown[];
      /** When it was last known to be exact (computed, or its stamp found unchanged). */
      at: number;
      staleness: number;
    }
  >();
  /** A number per blend settings object (the preset's, each A/B arm's): part of a memo key. */
  const blendIds = new WeakMap<BlendSettings, number>();
  let blends = 0;
  const blendId = (b: BlendSettings) => {
    const id = blends++;
    blendIds.set(b, id);
    return id;
  };
  return {
    memo: counts,
    answer(userId, n, options, row, blend, rowsVersion) {
      const v = o.view(userId);
      if (!v) return undefined;
      const settings = blend ?? o.blend;
      // Requests with options are rarer and vary: computed every time.
      if (rowsVersion === undefined || hasOptions(options))
        return blendAnswer(v, settings, row, userId, n, options);
      const models = o.collaborative();
      const stamp = [
        o.changes(),
        rowsVersion,
        models?.model("implicit")?.model,
        models?.model("explicit")?.model,
      ];
      const key = `${userId}\n${n}\n${blendIds.get(settings) ?? blendId(settings)}`;
      const user = o.userVersion?.(userId) ?? 0;
      if (maxAgeMs > 0) {
        const t = clock();
        const old = aged.get(key);
        // Still exact (nothing it read changed): as the exact memo serves it, and its view is
        // as of now.
        if (old && old.stamp.every((x, i) => Object.is(x, stamp[i])) && stillExact(old, user, v)) {
          counts.hits++;
          old.at = t;
          old.staleness = o.staleness?.() ?? 0;
          return old.answer;
        }
        // Aged only while the user's own data is the same: what a user just did shows at once.
        if (old && old.user === user && t - old.at <= maxAgeMs) {
          counts.hits++;
          counts.aged++;
          const stalenessMs = t - old.at + old.staleness;
          return stalenessMs > 0 ? { ...old.answer, stalenessMs } : old.answer;
        }
        counts.misses++;
        const answer = blendAnswer(v, settings, row, userId, n, options);
        aged.delete(key);
        if (aged.size >= MEMO_ANSWERS) aged.delete(aged.keys().next().value!);
        aged.set(key, { answer, user, stamp, at: t, staleness: o.staleness?.() ?? 0 });
        return answer;
      }
      const kept = memo.get(key, stamp);
      if (kept && stillExact(kept, user, v)) {
        counts.hits++;
        return kept.answer;
      }
      counts.misses++;
      const answer = blendAnswer(v, settings, row, userId, n, options);
      memo.set(key, stamp, { answer, user });
      return answer;
    },
  };
}

/**
 * Whether a kept answer whose stamp is the current one is still exact: the user's own data is the
 * same (`user`: their version now), and its watermark close enough to the view's progress (idle
 * progress moves the clock, and done items expire with it).
 */
function stillExact(
  kept: { answer: Recommendations; user: number },
  user: number,
  v: RecommenderView,
): boolean {
  return kept.user === user && (kept.answer.watermark ?? -1) >= v.progress() - MEMO_MAX_LAG_MS;
}

/** The user's recent items from the history source (categories from covisit's). */
export function recentOf(
  history: HistorySource,
  categoryOf: ((item: string) => string | undefined) | undefined,
  userId: string,
  n: number,
): RecentEvent[] {
  return history.recent(userId, n).map((x) => ({
    itemId: x.item,
    eventType: x.type,
    eventTime: x.ts,
    category: categoryOf?.(x.item) ?? "",
    count: x.count,
  }));
}

export { covisitSimilar };
export type { SimilarItems };
