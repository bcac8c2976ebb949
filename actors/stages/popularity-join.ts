import { ignoreElements, tap } from "rxjs";
import { defineStage, port, type StageContext } from "../../runtime/index.js";
import type { StageState } from "../../state/index.js";
import { createStageHandler, NO_OUTPUT, type AdaptedHandler } from "../host/index.js";
import type { ProfileRecord } from "./interest-ranking.js";
import type { PopularityRow } from "./popularity.js";
import { profileCodec } from "./popularity-join-profile.js";

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

export interface JoinView {
  profile(user: string): ProfileRecord | undefined;
  /**
   * Personalised candidates, ranked: score desc, ties by item id (plain string order); with
   * `limit`, at least the first `limit` of them.
   */
  candidates(user: string, table: PopularityTableView, now: number, limit?: number): Candidate[];
}

export type JoinHandler = AdaptedHandler<JoinView>;

export const byItemId = (a: string, b: string) => (a < b ? -1 : a > b ? 1 : 0);

/** Whether a purchases list is strictly ordered by item (interest-ranking writes it so). */
const sortedByItem = new WeakMap<readonly [string, number][], boolean>();
function isSortedByItem(pur: readonly [string, number][]): boolean {
  let sorted = sortedByItem.get(pur);
  if (sorted === undefined) {
    sorted = true;
    for (let k = 1; k < pur.length && sorted; k++) sorted = pur[k - 1]![0] < pur[k]![0];
    sortedByItem.set(pur, sorted);
  }
  return sorted;
}

/**
 * Whether a profile's purchases (`pur`: [item, end of its exclusion]) hold `item` with an end
 * after `from`: a binary search when the list is ordered by item, as interest-ranking writes it.
 */
export function purchasedAfter(pur: readonly [string, number][], item: string, from: number) {
  return pur.length > 0 && purchasedSince(pur, pur.length > 4 && isSortedByItem(pur), item, from);
}

/** Whether `item` was purchased after `from` according to `pur` (binary search when sorted). */
function purchasedSince(
  pur: readonly [string, number][],
  sorted: boolean,
  item: string,
  from: number,
): boolean {
  if (!sorted) {
    for (const [i, end] of pur) if (i === item && end > from) return true;
    return false;
  }
  let lo = 0;
  let hi = pur.length - 1;
  while (lo <= hi) {
    const mid = (lo + hi) >>> 1;
    const i = pur[mid]![0];
    if (i === item) return pur[mid]![1] > from;
    if (i < item) lo = mid + 1;
    else hi = mid - 1;
  }
  return false;
}

/**
 * Joins a profile with the popularity table: for each top category, the popular products
 * (purchases > 0) of that category score `category_interest × total_purchases / 100`; items the
 * user purchased within the exclusion horizon are left out.
 *
 * Runs per GetRecommendations call, so it allocates little: within a category the score order
 * is the table's ranking (purchases desc, ties by item id), so the global top `limit` lies in the
 * first `limit` non-excluded rows of each category, and exclusion is a binary search in the
 * profile's purchases (sorted by item) rather than a set built per call. A heavy buyer's
 * hundreds of purchases made this the largest cost of serving (11% of the process CPU).
 */
export function joinCandidates(
  profile: ProfileRecord,
  table: PopularityTableView,
  now: number,
  exclusionMs: number,
  limit = Infinity,
): Candidate[] {
  const pur = profile.pur;
  const sorted = pur.length > 4 && isSortedByItem(pur);
  const from = now - exclusionMs;
  // One list per category, each already in the final order (score desc, ties by item id).
  const lists: Candidate[][] = [];
  for (const [category, interest] of profile.top) {
    const rows = table.ranked(category);
    const list: Candidate[] = [];
    for (let k = 0; k < rows.length && list.length < limit; k++) {
      const row = rows[k]!;
      if (row.purchases <= 0) continue;
      if (pur.length > 0 && purchasedSince(pur, sorted, row.item, from)) continue;
      list.push({ row, score: (interest * row.purchases) / 100 });
    }
    if (list.length > 0) lists.push(list);
  }
  return mergeRanked(lists);
}

const ranksFirst = (a: Candidate, b: Candidate) =>
  a.score > b.score || (a.score === b.score && a.row.item < b.row.item);

/** Merges lists each ranked by score desc, ties by item id (an item is in one list at most). */
function mergeRanked(lists: Candidate[][]): Candidate[] {
  if (lists.length <= 1) return lists[0] ?? [];
  const heads = lists.map(() => 0);
  const out: Candidate[] = [];
  for (;;) {
    let best = -1;
    for (let l = 0; l < lists.length; l++) {
      const c = lists[l]![heads[l]!];
      if (c !== undefined && (best < 0 || ranksFirst(c, lists[best]![heads[best]!]!))) best = l;
    }
    if (best < 0) return out;
    out.push(lists[best]![heads[best]!++]!);
  }
}

/** Users remembered after their history left the horizon (empty profiles), per partition. */
export const EXPIRED_PROFILES_KEPT = 25_000;

/** A profile whose history has all left the horizon: the user was seen, but long ago. */
export function isEmptyProfile(p: ProfileRecord | undefined): boolean {
  return p !== undefined && p.top.length === 0 && p.pur.length === 0;
}

/**
 * isEmptyProfile on a profile's JSON text. `"top":[]` can only be the key with an empty array:
 * inside a JSON string every `"` is escaped, and ids and categories are values, never keys.
 */
export function isEmptyProfileText(text: string): boolean {
  return text.includes('"top":[]') && text.includes('"pur":[]');
}

/**
 * popularity-join: keeps the profiles of its partition's users (from interest-ranking) and joins
 * them with the broadcast popularity table when asked. The join runs at query time: a popularity
 * change would otherwise re-rank every user of a category, O(users) per purchase. So the stage
 * emits nothing: its output is its view.
 */
export const joinStage = defineStage({
  name: "popularity-join",
  input: port<ProfileRecord>(),
  ports: {},
  create(ctx: StageContext<JoinOptions>) {
    // MessagePack bytes, not JSON text (popularity-join-profile.ts: ~35 B a user, not ~70).
    const profiles = ctx.state.map<ProfileRecord>("profile", { codec: profileCodec });
    // Users whose whole history left the horizon keep an empty profile, so an answer can say
    // "history older than the horizon" instead of "unknown user". At most
    // EXPIRED_PROFILES_KEPT of them, oldest first out, so state stays bounded by active users.
    const expired = new Set<string>();
    // The expired users with the order they expired in (a sequence number), persisted: a restart
    // finds them without reading every profile (a scan of the cold profiles' bytes was ~100 ms
    // per 125k-user partition before gRPC could bind) and evicts the same oldest one as an
    // uninterrupted run (a scan gave them in the map's order).
    const expiredOrder = ctx.state.map<number>("expired");
    const expiredSeq = ctx.state.value<number>("expiredSeq");
    const markExpired = (u: string) => {
      const n = expiredSeq.get() ?? 0;
      expiredSeq.set(n + 1);
      expiredOrder.set(u, n);
      expired.add(u);
    };
    const unmarkExpired = (u: string) => {
      if (expired.delete(u)) expiredOrder.delete(u);
    };
    if (expiredSeq.get() !== undefined) {
      const byOrder = [...expiredOrder.entries()].sort((a, b) => a[1] - b[1]);
      for (const [u] of byOrder) expired.add(u);
    } else {
      // A snapshot from before the order was kept: from the profiles' text where the map keeps
      // it (parsing every profile was 160-490 ms per 37.5k-user partition).
      const found: string[] = [];
      for (const u of profiles.keys()) {
        const text = profiles.peekText?.(u);
        if (text !== undefined ? isEmptyProfileText(text) : isEmptyProfile(profiles.get(u)))
          found.push(u);
      }
      expiredSeq.set(0);
      for (const u of found) markExpired(u);
    }
    /** Profiles are upserts by user; an empty one marks the user as expired. */
    const upsert = (p: ProfileRecord) => {
      if (p.top.length === 0 && p.pur.length === 0) {
        if (!profiles.get(p.u)) return; // never had history here: nothing to remember
        profiles.set(p.u, p);
        unmarkExpired(p.u);
        markExpired(p.u);
        if (expired.size > EXPIRED_PROFILES_KEPT) {
          const oldest = expired.values().next().value as string;
          unmarkExpired(oldest);
          profiles.delete(oldest);
        }
      } else {
        unmarkExpired(p.u);
        profiles.set(p.u, p);
      }
    };
    return {
      view: {
        profile: (u) => profiles.get(u),
        candidates(u, table, now, limit) {
          const p = profiles.get(u);
          if (!p) return [];
          return joinCandidates(p, table, now, ctx.settings.purchaseExclusionMs, limit);
        },
      } satisfies JoinView,
      operator: (batches$) =>
        batches$.pipe(
          tap(({ records }) => records.forEach(upsert)),
          ignoreElements(),
        ),
    };
  },
});

/** The stage in today's host (no ports: nothing to map). */
export function createJoinHandler(state: StageState, opts: JoinOptions): JoinHandler {
  return createStageHandler(joinStage, state, NO_OUTPUT, { settings: opts, topology: {} });
}
