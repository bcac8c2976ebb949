import { decodeEnvelope, type StageHandler, type StageOutput } from "./host.js";
import type { StageState } from "../state/index.js";
import type { WindowOutput, WindowRecord } from "./window.js";
import { subjects } from "./subjects.js";

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

export interface InterestOptions {
  partition: number;
  /** Interest horizon (DESIGN: 24 h of event time). */
  horizonMs: number;
  /** Window size, to know a window's end from its start. */
  windowMs: number;
  /** How many categories to keep (DESIGN: 3). */
  topCategories: number;
}

export interface InterestHandler extends StageHandler {
  profile(user: string): ProfileRecord | undefined;
}

/** A window cell as persisted: key JSON [w, t, u, i], value [count, main category]. */
type Cell = [number, string];

interface UserAgg {
  /** Interactions per main category over the live windows. */
  cats: Map<string, number>;
  /** Purchase cells: item -> window start -> count. */
  pur: Map<string, Map<number, number>>;
}

const byName = (a: string, b: string) => (a < b ? -1 : a > b ? 1 : 0);

/**
 * interest-ranking: per user, category interest = interactions per main category over the
 * closed and open windows of the last 24 h of event time (windows ending after progress − 24 h);
 * the top 3 categories (ties by name) and the purchases of those windows go on as a profile
 * upsert whenever they change, including when old windows leave the horizon.
 *
 * Window results are upserts, so a cell's new count replaces its old one (never double counts).
 * Aggregates are kept incrementally: a record costs O(1), a profile O(categories + purchases).
 */
export function createInterestHandler(
  state: StageState,
  out: StageOutput,
  opts: InterestOptions,
): InterestHandler {
  const cells = state.map<Cell>("cell");
  const profiles = state.map<ProfileRecord>("profile");
  // Derived, in memory, rebuilt from the cells on load.
  const users = new Map<string, UserAgg>();
  const byWindow = new Map<number, Set<string>>();
  let progress = Number(state.meta.progress ?? -1);
  const target = subjects.interestRanking(opts.partition);

  const aggOf = (u: string) => {
    let a = users.get(u);
    if (!a) users.set(u, (a = { cats: new Map(), pur: new Map() }));
    return a;
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
  ) => {
    const a = aggOf(u);
    if (c) {
      const v = (a.cats.get(c) ?? 0) + delta;
      if (v === 0) a.cats.delete(c);
      else a.cats.set(c, v);
    }
    if (t === "purchase") {
      let ws = a.pur.get(i);
      if (!ws) a.pur.set(i, (ws = new Map()));
      if (n === 0) ws.delete(w);
      else ws.set(w, n);
      if (ws.size === 0) a.pur.delete(i);
    }
    let s = byWindow.get(w);
    if (n > 0) {
      if (!s) byWindow.set(w, (s = new Set()));
      s.add(key);
    }
    if (a.cats.size === 0 && a.pur.size === 0) users.delete(u);
  };
  for (const [key, [n, c]] of cells.entries()) {
    const [w, t, u, i] = JSON.parse(key) as [number, string, string, string];
    apply(key, w, t, u, i, c, n, n);
  }

  const profileOf = (u: string): ProfileRecord => {
    const a = users.get(u);
    if (!a) return { u, top: [], pur: [], wm: progress };
    const top = [...a.cats]
      .sort((x, y) => y[1] - x[1] || byName(x[0], y[0]))
      .slice(0, opts.topCategories);
    const pur: [string, number][] = [];
    for (const [item, ws] of a.pur) pur.push([item, Math.max(...ws.keys()) + opts.windowMs]);
    pur.sort((x, y) => byName(x[0], y[0]));
    return { u, top, pur, wm: progress };
  };

  const refresh = (u: string) => {
    const p = profileOf(u);
    const prev = profiles.get(u);
    if (prev && JSON.stringify([prev.top, prev.pur]) === JSON.stringify([p.top, p.pur])) return;
    if (!prev && p.top.length === 0 && p.pur.length === 0) return;
    if (p.top.length === 0 && p.pur.length === 0) profiles.delete(u);
    else profiles.set(u, p);
    out.emit(target, p);
  };

  return {
    profile: (u) => profiles.get(u),
    handle(msg) {
      const env = decodeEnvelope<WindowOutput>(msg.data);
      const touched = new Set<string>();
      if (env.wm > progress) {
        progress = env.wm;
        state.meta.progress = progress;
      }
      for (const r of env.recs) {
        if ("close" in r) continue; // finality changes nothing here: counts are upserts
        const rec = r as WindowRecord;
        const key = JSON.stringify([rec.w, rec.t, rec.u, rec.i]);
        const old = cells.get(key);
        cells.set(key, [rec.n, rec.c]);
        if (old && old[1] !== rec.c) {
          // The carried category changed: move the old count out of the old category.
          apply(key, rec.w, rec.t, rec.u, rec.i, old[1], -old[0], 0);
          apply(key, rec.w, rec.t, rec.u, rec.i, rec.c, rec.n, rec.n);
        } else apply(key, rec.w, rec.t, rec.u, rec.i, rec.c, rec.n - (old?.[0] ?? 0), rec.n);
        touched.add(rec.u);
      }
      // Windows that left the horizon: drop their cells and refresh the users they held.
      const from = progress - opts.horizonMs;
      for (const w of [...byWindow.keys()].sort((a, b) => a - b)) {
        if (w + opts.windowMs > from) break;
        for (const key of byWindow.get(w) ?? []) {
          const cell = cells.get(key);
          if (!cell) continue;
          const [, t, u, i] = JSON.parse(key) as [number, string, string, string];
          cells.delete(key);
          apply(key, w, t, u, i, cell[1], -cell[0], 0);
          touched.add(u);
        }
        byWindow.delete(w);
      }
      for (const u of touched) refresh(u);
      out.setProgress(progress);
      out.touch(target);
    },
  };
}
