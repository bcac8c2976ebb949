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

interface UserData {
  /** "<w>|<t>|<item>" -> [count, category] */
  cells: Record<string, [number, string]>;
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

/**
 * Computes a profile from a user's window cells at event time `now`: category interest is the
 * number of interactions per main category over windows ending after now − horizon; purchases
 * within the same horizon are listed for exclusion.
 */
export function computeProfile(
  u: string,
  data: UserData,
  now: number,
  opts: Pick<InterestOptions, "horizonMs" | "windowMs" | "topCategories">,
): ProfileRecord {
  const from = now - opts.horizonMs;
  const interest = new Map<string, number>();
  const pur = new Map<string, number>();
  for (const [key, [n, c]] of Object.entries(data.cells)) {
    const a = key.indexOf("|");
    const b = key.indexOf("|", a + 1);
    const end = Number(key.slice(0, a)) + opts.windowMs;
    if (end <= from) continue;
    if (c) interest.set(c, (interest.get(c) ?? 0) + n);
    if (key.slice(a + 1, b) === "purchase") {
      const item = key.slice(b + 1);
      pur.set(item, Math.max(pur.get(item) ?? 0, end));
    }
  }
  const top = [...interest]
    .sort((x, y) => y[1] - x[1] || (x[0] < y[0] ? -1 : x[0] > y[0] ? 1 : 0))
    .slice(0, opts.topCategories);
  const purList = [...pur].sort((x, y) => (x[0] < y[0] ? -1 : x[0] > y[0] ? 1 : 0));
  return { u, top, pur: purList, wm: now };
}

function sameProfile(a: ProfileRecord | undefined, b: ProfileRecord): boolean {
  return a !== undefined && JSON.stringify([a.top, a.pur]) === JSON.stringify([b.top, b.pur]);
}

/**
 * interest-ranking: per user, category interest over the closed and open windows of the last
 * 24 h of event time; the top 3 categories and recent purchases go on as a profile upsert
 * whenever they change, including when old windows leave the horizon.
 */
export function createInterestHandler(
  state: StageState,
  out: StageOutput,
  opts: InterestOptions,
): InterestHandler {
  const users = state.map<UserData>("user");
  const profiles = state.map<ProfileRecord>("profile");
  // window start -> users with cells in it (in memory, rebuilt from the snapshot)
  const byWindow = new Map<number, Set<string>>();
  for (const [u, d] of users.entries())
    for (const k of Object.keys(d.cells)) index(Number(k.slice(0, k.indexOf("|"))), u);
  let progress = Number(state.meta.progress ?? -1);
  const target = subjects.interestRanking(opts.partition);

  function index(w: number, u: string) {
    let s = byWindow.get(w);
    if (!s) byWindow.set(w, (s = new Set()));
    s.add(u);
  }

  const refresh = (u: string) => {
    const data = users.get(u);
    if (!data) return;
    const p = computeProfile(u, data, progress, opts);
    if (!sameProfile(profiles.get(u), p)) {
      profiles.set(u, p);
      out.emit(target, p);
    }
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
        const prev = users.get(rec.u);
        const cells = { ...(prev?.cells ?? {}) };
        cells[`${rec.w}|${rec.t}|${rec.i}`] = [rec.n, rec.c];
        users.set(rec.u, { cells });
        index(rec.w, rec.u);
        touched.add(rec.u);
      }
      // Windows that left the horizon: drop their cells and refresh the users they held.
      const from = progress - opts.horizonMs;
      for (const [w, us] of [...byWindow].sort((a, b) => a[0] - b[0])) {
        if (w + opts.windowMs > from) break;
        byWindow.delete(w);
        for (const u of us) {
          const d = users.get(u);
          if (!d) continue;
          const cells: Record<string, [number, string]> = {};
          for (const [k, v] of Object.entries(d.cells)) if (!k.startsWith(`${w}|`)) cells[k] = v;
          if (Object.keys(cells).length === 0) users.delete(u);
          else users.set(u, { cells });
          touched.add(u);
        }
      }
      for (const u of touched) {
        if (users.has(u)) refresh(u);
        else if (profiles.has(u)) {
          const empty: ProfileRecord = { u, top: [], pur: [], wm: progress };
          profiles.delete(u);
          out.emit(target, empty);
        }
      }
      out.setProgress(progress);
      out.touch(target);
    },
  };
}
