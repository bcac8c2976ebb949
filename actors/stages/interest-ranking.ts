import { map } from "rxjs";
import { defineStage, port, type StageContext } from "../../runtime/index.js";
import type { WindowOutput, WindowRecord } from "./window.js";
import type { AdaptedHandler } from "../host/index.js";
import { createIntPairs, createPackedKeys } from "./packed-keys.js";
import { cellKey, keyTail, parseCellKey } from "./interest-ranking-keys.js";
import {
  cellCodec,
  addToCategory,
  PACKED,
  MAX_PACKED_CATEGORIES,
  JOIN_KEYS,
  keysOf,
  byName,
  NO_PURCHASES,
  topOf,
  samePairs,
  type Cell,
  type UserAgg,
  type WindowKeys,
  type ProfileParts,
} from "./interest-ranking-profiles.js";

/** A user's profile on the hop to popularity-join: an upsert keyed by user. */
export interface ProfileRecord {
  u: string;
  /** Top categories [category, interest], interest descending, ties by name. */
  top: [string, number][];
  /** Items purchased within the horizon: [item, end of the window of the latest purchase]. */
  pur: [string, number][];
  /** Event-time progress the profile reflects. */
  wm: number;
}

export interface InterestSettings {
  /** Interest horizon (DESIGN: 24 h of event time). */
  horizonMs: number;
  /** Window size, to know a window's end from its start. */
  windowMs: number;
  /** How many categories to keep (DESIGN: 3). */
  topCategories: number;
}

export interface InterestOptions extends InterestSettings {
  partition: number;
}

export interface InterestView {
  profile(user: string): ProfileRecord | undefined;
}

export type InterestHandler = AdaptedHandler<InterestView>;

/** Cells rebuilt into the aggregates per slice of a load. */
const REBUILD_SLICE = 10_000;

/**
 * interest-ranking: per user, category interest = interactions per main category over the
 * closed and open windows of the last 24 h of event time (windows ending after progress − 24 h);
 * the top 3 categories (ties by name) and the purchases of those windows go on as a profile
 * upsert whenever they change, including when old windows leave the horizon.
 *
 * Window results are upserts, so a cell's new count replaces its old one (never double counts).
 * Aggregates are kept incrementally: a record costs O(1), a profile O(categories + purchases).
 * They are derived, in memory, and rebuilt from the cells on load in slices (125k users' cells
 * took 0.35-1.5 s in one go, while a restarted process was already answering gRPC).
 *
 * The last profile sent is not kept: between batches it is always the one the aggregates give
 * (every user a batch touches gets hers sent if it changed), so a batch compares each touched
 * user's profile before and after it. (A map of sent profiles duplicated popularity-join's:
 * ~130 B per user; snapshots of that layout have theirs deleted on load.)
 */
export const interestStage = defineStage({
  name: "interest-ranking",
  input: port<WindowOutput>(),
  ports: { profiles: port<ProfileRecord>() },
  create(ctx: StageContext<InterestSettings>) {
    const opts = ctx.settings;
    const cells = ctx.state.map<Cell>("cell", { codec: cellCodec });
    // The earlier layout's sent profiles, deleted on load (see above).
    const oldProfiles = ctx.state.map<ProfileRecord>("profile", { text: true });
    /** Packed users ({@link PACKED}), in typed arrays (packed-keys.ts: ~30 B per user). */
    const packedUsers = createPackedKeys();
    /** Two-category packed users' numbers, at −1 − their packed value. */
    const pairs = createIntPairs();
    /** What `aggOf` found packed for the user it was last asked for (to free a pair's slot). */
    let heldPacked: number | undefined;
    /** The other users' aggregates. A user is in one of the two or in neither. */
    const users = new Map<string, UserAgg>();
    /** Category numbers of packed users, and their names. */
    const catIds = new Map<string, number>();
    const catNames: string[] = [];
    /** Users touched by the batch being applied, with their profile parts before it. */
    const before = new Map<string, ProfileParts | undefined>();
    /** Progress of the last batch: the `wm` of a profile read through the view. */
    let lastProgress = -1;
    /**
     * Each window's cell keys, to drop the cells when it leaves the horizon. A key may be listed
     * twice (a cell whose category changed): the cell is gone when its second turn comes, as with
     * a set. Held as runs of joined keys: the cells' own keys are bytes once cold.
     */
    const byWindow = new Map<number, WindowKeys>();

    /** A packed value's categories as flat pairs (a new array). */
    const catsOf = (a: number): (string | number)[] => {
      if (a >= 0) return [catNames[Math.floor(a / PACKED)]!, a % PACKED];
      const x = pairs.first(-1 - a);
      const y = pairs.second(-1 - a);
      return [
        catNames[Math.floor(x / PACKED)]!,
        x % PACKED,
        catNames[Math.floor(y / PACKED)]!,
        y % PACKED,
      ];
    };
    /** The user's aggregates to change (a packed user's as a new object); `keep` stores them. */
    const aggOf = (u: string): UserAgg => {
      heldPacked = undefined;
      const o = users.size > 0 ? users.get(u) : undefined;
      if (o !== undefined) return o;
      const a = packedUsers.get(u);
      if (a === undefined) return { cats: [], pur: undefined, purList: undefined };
      heldPacked = a;
      return { cats: catsOf(a), pur: undefined, purList: undefined };
    };
    /** Category `c` with count `n` as one packed number; undefined: it does not pack. */
    const packOne = (c: string, n: number): number | undefined => {
      if (!(n > 0 && n < PACKED && Number.isInteger(n))) return undefined;
      let id = catIds.get(c);
      if (id === undefined) {
        if (catNames.length >= MAX_PACKED_CATEGORIES) return undefined;
        catIds.set(c, (id = catNames.length));
        catNames.push(c);
      }
      return id * PACKED + n;
    };
    /** Frees the pair slot of a packed value that had one. */
    const release = (p: number | undefined) => {
      if (p !== undefined && p < 0) pairs.free(-1 - p);
    };
    /** Stores `a` for `u` right after `aggOf(u)` (which noted what was packed for her). */
    const keep = (u: string, a: UserAgg) => {
      const held = heldPacked;
      heldPacked = undefined;
      if (a.cats.length === 0 && a.pur === undefined) {
        if (!users.delete(u) && packedUsers.delete(u)) release(held);
        return;
      }
      const cats = a.cats;
      let p: number | undefined;
      let q: number | undefined;
      if (a.pur === undefined && (cats.length === 2 || cats.length === 4)) {
        p = packOne(cats[0] as string, cats[1] as number);
        if (p !== undefined && cats.length === 4) {
          q = packOne(cats[2] as string, cats[3] as number);
          if (q === undefined) p = undefined;
        }
      }
      if (p !== undefined) {
        if (users.size > 0) users.delete(u);
        if (q === undefined) {
          release(held);
          packedUsers.set(u, p);
        } else if (held !== undefined && held < 0) pairs.set(-1 - held, p, q);
        else packedUsers.set(u, -1 - pairs.add(p, q));
      } else if (users.get(u) !== a) {
        if (packedUsers.delete(u)) release(held);
        users.set(u, a);
      }
    };
    const apply = (
      key: string,
      w: number,
      t: string,
      u: string,
      i: string,
      c: string,
      delta: number,
      n: number,
      // Whether the key may be new to its window's index (a cell already held is indexed).
      unindexed = n > 0,
    ) => {
      const a = aggOf(u);
      if (c) a.cats = addToCategory(a.cats, c, delta);
      if (t === "purchase") {
        a.purList = undefined;
        const pur = a.pur;
        let at = -1;
        if (pur)
          for (let x = 0; x < pur.length; x += 2)
            if (pur[x] === i && pur[x + 1] === w) {
              at = x;
              break;
            }
        if (n === 0 && at >= 0) {
          // Order is free (purListOf sorts): the last cell fills the hole.
          const last = pur!.length - 2;
          pur![at] = pur![last]!;
          pur![at + 1] = pur![last + 1]!;
          pur!.length = last;
          if (last === 0) a.pur = undefined;
        } else if (n !== 0 && at < 0) a.pur = pur ? pur.concat([i, w]) : [i, w];
      }
      if (unindexed) {
        let s = byWindow.get(w);
        if (!s) byWindow.set(w, (s = { joined: [], recent: [] }));
        s.recent.push(keyTail(key));
        if (s.recent.length === JOIN_KEYS) {
          s.joined.push(s.recent.join("\n"));
          s.recent = [];
        }
      }
      keep(u, a);
    };
    function* rebuild(): Generator<void, void, void> {
      // The walks below index every key of a lazily loaded map at once (~300 ms per partition
      // of 1M users, the loop held while a restarted process answers): in slices first.
      for (const m of [oldProfiles, cells]) while ((m.settle?.(REBUILD_SLICE) ?? 0) > 0) yield;
      let slice = 0;
      for (const k of [...oldProfiles.keys()]) {
        oldProfiles.delete(k);
        if (++slice === REBUILD_SLICE) {
          slice = 0;
          yield;
        }
      }
      // Peeked, not read: a read keeps each cell decoded for the next snapshots, every cell at
      // once after a restart (the plain map's memory again, ~150 B per cell).
      const peek = (k: string) => (cells.peek ? cells.peek(k) : cells.get(k));
      // Cells of snapshots written with JSON keys move to their compact key (once: the next
      // upsert of such a cell must find it there), after the walk, which must not meet them.
      const moved: string[] = [];
      for (const key of cells.keys()) {
        const cell = peek(key);
        if (cell === undefined) continue;
        const [n, c] = cell;
        const { w, t, u, i } = parseCellKey(key);
        if (key.charCodeAt(0) === 91 /* [ */ && cellKey(w, t, u, i) !== key) moved.push(key);
        else apply(key, w, t, u, i, c, n, n);
        if (++slice === REBUILD_SLICE) {
          slice = 0;
          yield;
        }
      }
      for (const old of moved) {
        const cell = peek(old)!;
        const { w, t, u, i } = parseCellKey(old);
        const key = cellKey(w, t, u, i);
        cells.delete(old);
        cells.set(key, cell);
        apply(key, w, t, u, i, cell[1], cell[0], cell[0]);
        if (++slice === REBUILD_SLICE) {
          slice = 0;
          yield;
        }
      }
    }

    const purListOf = (a: UserAgg): [string, number][] => {
      if (a.purList) return a.purList;
      if (a.pur === undefined) return (a.purList = NO_PURCHASES);
      // Each item with the end of its latest window.
      const pur: [string, number][] = [];
      const cells = a.pur;
      for (let x = 0; x < cells.length; x += 2) {
        const item = cells[x] as string;
        const end = (cells[x + 1] as number) + opts.windowMs;
        const seen = pur.find((p) => p[0] === item);
        if (!seen) pur.push([item, end]);
        else if (end > seen[1]) seen[1] = end;
      }
      return (a.purList = pur.sort((x, y) => byName(x[0], y[0])));
    };

    /** A user's profile parts as the aggregates give them; undefined: no profile. */
    const partsOf = (u: string): ProfileParts | undefined => {
      const a = (users.size > 0 ? users.get(u) : undefined) ?? packedUsers.get(u);
      if (a === undefined) return undefined;
      if (typeof a === "number") {
        if (a < 0) {
          const top = topOf(catsOf(a), opts.topCategories);
          return top.length === 0 ? undefined : { top, pur: NO_PURCHASES };
        }
        const top: [string, number][] =
          opts.topCategories > 0 ? [[catNames[Math.floor(a / PACKED)]!, a % PACKED]] : [];
        return top.length === 0 ? undefined : { top, pur: NO_PURCHASES };
      }
      const top = topOf(a.cats, opts.topCategories);
      const pur = purListOf(a);
      return top.length === 0 && pur.length === 0 ? undefined : { top, pur };
    };
    /** Adds `u` to the batch's touched users, with her profile parts before the batch. */
    const touch = (u: string, touched: Set<string>) => {
      if (touched.has(u)) return;
      touched.add(u);
      before.set(u, partsOf(u));
    };

    /** Applies the window results (upserts) to cells and aggregates: the users they touched. */
    const upsertCells = (records: readonly WindowOutput[]): Set<string> => {
      const touched = new Set<string>();
      before.clear();
      for (const r of records) {
        if ("close" in r) continue; // finality changes nothing here: counts are upserts
        const rec = r as WindowRecord;
        touch(rec.u, touched);
        const key = cellKey(rec.w, rec.t, rec.u, rec.i);
        const old = cells.get(key);
        cells.set(key, [rec.n, rec.c]);
        if (old && old[1] !== rec.c) {
          // The carried category changed: move the old count out of the old category.
          apply(key, rec.w, rec.t, rec.u, rec.i, old[1], -old[0], 0);
          apply(key, rec.w, rec.t, rec.u, rec.i, rec.c, rec.n, rec.n);
        } else
          apply(
            key,
            rec.w,
            rec.t,
            rec.u,
            rec.i,
            rec.c,
            rec.n - (old?.[0] ?? 0),
            rec.n,
            !old && rec.n > 0,
          );
      }
      return touched;
    };

    /** Drops the cells of windows that left the horizon at `progress`; adds their users. */
    const expire = (progress: number, touched: Set<string>): Set<string> => {
      const from = progress - opts.horizonMs;
      for (const w of [...byWindow.keys()].sort((a, b) => a - b)) {
        if (w + opts.windowMs > from) break;
        const keys = byWindow.get(w);
        for (const key of keys ? keysOf(w, keys) : []) {
          const cell = cells.get(key);
          if (!cell) continue;
          const { t, u, i } = parseCellKey(key);
          touch(u, touched);
          cells.delete(key);
          apply(key, w, t, u, i, cell[1], -cell[0], 0);
        }
        byWindow.delete(w);
      }
      return touched;
    };

    /** The profiles of `touched` users that changed, stamped with the progress they reflect. */
    const changedProfiles = (touched: Set<string>, progress: number): ProfileRecord[] => {
      lastProgress = progress;
      const changed: ProfileRecord[] = [];
      for (const u of touched) {
        const now = partsOf(u);
        const prev = before.get(u);
        if (prev && now && samePairs(prev.top, now.top) && samePairs(prev.pur, now.pur)) continue;
        if (!prev && !now) continue;
        changed.push({ u, top: now?.top ?? [], pur: now?.pur ?? NO_PURCHASES, wm: progress });
      }
      before.clear();
      return changed;
    };

    return {
      view: {
        profile: (u) => {
          const parts = partsOf(u);
          return parts && { u, ...parts, wm: lastProgress };
        },
      } satisfies InterestView,
      restore: rebuild(),
      operator: (batches$) =>
        batches$.pipe(
          map(({ records, progress }) => ({
            progress: progress.to,
            touched: upsertCells(records),
          })),
          map(({ progress, touched }) => ({ progress, touched: expire(progress, touched) })),
          map(({ progress, touched }) => ({ profiles: changedProfiles(touched, progress) })),
        ),
    };
  },
});
