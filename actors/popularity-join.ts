import { decodeEnvelope, type StageHandler } from "./host.js";
import type { StageState } from "../state/index.js";
import type { ProfileRecord } from "./interest-ranking.js";
import type { PopularityRow } from "./popularity.js";

/** The broadcast popularity table as every partition of a process sees it. */
export interface PopularityTableView {
  /** Rows of a main category with purchases > 0 (any order). */
  category(category: string): Iterable<PopularityRow>;
  /** The same rows ranked by purchases desc, ties by item id (cached until the category changes). */
  ranked(category: string): readonly PopularityRow[];
  /** Top rows overall by purchases desc, ties by item id. */
  top(n: number): PopularityRow[];
  /** Number of rows with purchases > 0. */
  readonly size: number;
  /** Highest event-time progress seen in the table, -1 before any. */
  readonly wm: number;
}

export interface Candidate {
  row: PopularityRow;
  score: number;
}

export interface JoinOptions {
  /** Purchases within this horizon exclude an item (DESIGN: 24 h). */
  purchaseExclusionMs: number;
}

export interface JoinHandler extends StageHandler {
  profile(user: string): ProfileRecord | undefined;
  /**
   * Personalised candidates, ranked: score desc, ties by item id (plain string order); with
   * `limit`, at least the first `limit` of them.
   */
  candidates(user: string, table: PopularityTableView, now: number, limit?: number): Candidate[];
}

export const byItemId = (a: string, b: string) => (a < b ? -1 : a > b ? 1 : 0);

/**
 * Joins a profile with the popularity table: for each top category, the popular products
 * (purchases > 0) of that category score `category_interest × total_purchases / 100`; items the
 * user purchased within the exclusion horizon are left out.
 */
export function joinCandidates(
  profile: ProfileRecord,
  table: PopularityTableView,
  now: number,
  exclusionMs: number,
  limit = Infinity,
): Candidate[] {
  const excluded = new Set(
    profile.pur.filter(([, end]) => end > now - exclusionMs).map(([i]) => i),
  );
  // Within a category the score order is the purchase order, so the global top `limit` lies in
  // the first limit + |excluded| rows of each category's ranking: no need to score them all.
  const take = limit + excluded.size;
  const out: Candidate[] = [];
  for (const [category, interest] of profile.top) {
    const rows = table.ranked(category);
    for (let k = 0; k < rows.length && k < take; k++) {
      const row = rows[k]!;
      if (row.purchases <= 0 || excluded.has(row.item)) continue;
      out.push({ row, score: (interest * row.purchases) / 100 });
    }
  }
  return out.sort((a, b) => b.score - a.score || byItemId(a.row.item, b.row.item));
}

/**
 * popularity-join: keeps the profiles of its partition's users (from interest-ranking) and joins
 * them with the broadcast popularity table when asked. The join runs at query time: a popularity
 * change would otherwise re-rank every user of a category, O(users) per purchase.
 */
export function createJoinHandler(state: StageState, opts: JoinOptions): JoinHandler {
  const profiles = state.map<ProfileRecord>("profile");
  let progress = Number(state.meta.progress ?? -1);
  return {
    profile: (u) => profiles.get(u),
    candidates(u, table, now, limit) {
      const p = profiles.get(u);
      if (!p) return [];
      return joinCandidates(p, table, now, opts.purchaseExclusionMs, limit);
    },
    handle(msg) {
      const env = decodeEnvelope<ProfileRecord>(msg.data);
      for (const p of env.recs) {
        if (p.top.length === 0 && p.pur.length === 0) profiles.delete(p.u);
        else profiles.set(p.u, p);
      }
      if (env.wm > progress) {
        progress = env.wm;
        state.meta.progress = progress;
      }
    },
  };
}
