import { describe, expect, it } from "vitest";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { openStateDb, type StageStateInternal } from "../state/index.js";
import { feedJoin } from "./helpers/join-feed.js";
import type { ProfileRecord } from "../actors/stages/index.js";
import { createJoinHandler, EXPIRED_PROFILES_KEPT } from "../actors/stages/index.js";
import { DAY } from "../actors/contract/index.js";

/**
 * popularity-join remembers at most EXPIRED_PROFILES_KEPT users whose history left the horizon,
 * oldest first out. After a restart (real LevelDB) it must evict the same user as a run that
 * never stopped, without reading every profile at load (its profiles are cold bytes until read,
 * and the load is before gRPC binds).
 */
const NOW = Date.UTC(2024, 0, 8, 12, 0, 0);
const profile = (u: string, top: [string, number][]): ProfileRecord => ({
  u,
  top,
  pur: [],
  wm: NOW,
});
const feed = (h: ReturnType<typeof createJoinHandler>, seq: number, recs: ProfileRecord[]) =>
  feedJoin(h, seq, recs, NOW);
/** Counts the profile map's key scans made through `state`. */
function countScans(state: StageStateInternal) {
  const counter = { scans: 0 };
  const map = state.map.bind(state);
  state.map = ((name: string, options?: object) => {
    const m = map(name, options);
    if (name !== "profile") return m;
    const keys = m.keys.bind(m);
    m.keys = () => {
      counter.scans++;
      return keys();
    };
    return m;
  }) as typeof state.map;
  return counter;
}

describe("popularity-join's expired users across a restart", () => {
  it("evicts the user that expired first, as without the restart, and scans no profiles", async () => {
    const dir = await mkdtemp(join(tmpdir(), "reco-join-"));
    const db = await openStateDb(dir);
    try {
      const n = EXPIRED_PROFILES_KEPT;
      // Users expire in the reverse of their names' order (and of their first profiles').
      const users = Array.from({ length: n }, (_, i) => `x${String(i).padStart(6, "0")}`);
      const store = db.instance("popularity-join", 0);
      const state = await store.load();
      const h = createJoinHandler(state, { purchaseExclusionMs: DAY });
      feed(
        h,
        1,
        users.map((u) => profile(u, [["books", 1]])),
      );
      feed(
        h,
        2,
        [...users].reverse().map((u) => profile(u, [])),
      );
      state.meta = { ...state.meta, seq: 2 };
      await store.write(state);
      await store.write(state); // profiles back to bytes

      const again = db.instance("popularity-join", 0);
      const loaded = await again.load();
      const counter = countScans(loaded);
      const h2 = createJoinHandler(loaded, { purchaseExclusionMs: DAY });
      expect(counter.scans).toBe(0);
      // One more expired user: the first to expire goes (the last by name), the others stay.
      feed(h2, 3, [profile("y", [["books", 1]])]);
      feed(h2, 4, [profile("y", [])]);
      const last = users[n - 1]!;
      expect(h2.profile(last)).toBeUndefined();
      expect(h2.profile(users[0]!)).toEqual(profile(users[0]!, []));
      expect(h2.profile(users[n - 2]!)).toEqual(profile(users[n - 2]!, []));
      expect(h2.profile("y")).toEqual(profile("y", []));
    } finally {
      await db.close();
      await rm(dir, { recursive: true, force: true });
    }
  });
});
