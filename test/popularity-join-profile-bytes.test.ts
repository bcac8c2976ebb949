import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { feedJoin } from "./helpers/join-feed.js";
import type { ProfileRecord } from "../actors/stages/index.js";
import { createJoinHandler, decodeProfile, encodeProfile } from "../actors/stages/index.js";
import { DAY } from "../actors/contract/index.js";
import { createStageState, openStateDb } from "../state/store.js";

/**
 * Popularity-join's profiles (one per user, the largest stage of cold state at
 * 1M users in bench step 7) are stored as MessagePack tuples, not JSON text; profiles stored as
 * JSON text before still load.
 */
const NOW = Date.UTC(2026, 10, 23, 7, 0, 0);
const profile = (u: string, top: [string, number][], pur: [string, number][] = []) =>
  ({ u, top, pur, wm: NOW }) as ProfileRecord;

const feed = (h: ReturnType<typeof createJoinHandler>, seq: number, recs: ProfileRecord[]) =>
  feedJoin(h, seq, recs, NOW);

describe("popularity-join's stored profile", () => {
  it("gives back the same profile (ids of any script, doubles bit for bit)", () => {
    for (const p of [
      profile("u1", [["electronics", 1]]),
      profile(
        "商品-😀",
        [
          ["ça", 0.1 + 0.2],
          ["b", 3],
          ["a", 3],
        ],
        [["i-é", NOW + 300_000]],
      ),
      profile("x".repeat(128), [], []),
      { u: "u2", top: [["c", 1e300]], pur: [["i", -1]], wm: -1 } as ProfileRecord,
    ]) {
      expect(decodeProfile(encodeProfile(p))).toEqual(p);
      expect(decodeProfile(JSON.stringify(p))).toEqual(p);
    }
    expect(() => decodeProfile(encodeProfile(profile("u", [])).subarray(1))).toThrow();
  });

  it("is at most half of the JSON text for a user with one category (~70 B before)", () => {
    const p = profile("u123456", [["electronics", 1]]);
    const text = JSON.stringify(p).length;
    expect(text).toBeGreaterThan(60);
    expect(encodeProfile(p).length).toBeLessThanOrEqual(text / 2);
  });

  it("holds a cold user in under 80 B of records and index (JSON text: ~115 B)", () => {
    const state = createStageState();
    const h = createJoinHandler(state, { purchaseExclusionMs: DAY });
    const n = 20_000;
    const users = Array.from({ length: n }, (_, x) => profile(`u${100_000 + x}`, [["sports", 1]]));
    feed(h, 1, users);
    state.takeDelta(); // the profiles go cold: bytes in the map's index
    expect(state.coldBytes() / n).toBeLessThan(80);
    expect(h.profile("u100007")).toEqual(users[7]);
  });

  it("loads profiles that a snapshot stored as JSON text, and writes bytes from then on (LevelDB)", async () => {
    const dir = await mkdtemp(join(tmpdir(), "reco-join-bytes-"));
    const db = await openStateDb(dir);
    try {
      const store = db.instance("popularity-join", 0);
      // The layout before: a text map.
      const old = createStageState();
      const text = old.map<ProfileRecord>("profile", { text: true });
      const a = profile("u1", [["books", 2]], [["b1", NOW]]);
      const b = profile("u2", [["toys", 1]]);
      text.set("u1", a);
      text.set("u2", b);
      old.meta = { seq: 1 };
      await store.write(old);
      const raw0 = new Map((await store.exportRaw()).entries);
      expect(String(raw0.get("profile\u0000u1"))).toMatch(/^\{"u":"u1"/);

      const st = await store.load();
      const h = createJoinHandler(st, { purchaseExclusionMs: DAY });
      expect(h.profile("u1")).toEqual(a);
      expect(h.profile("u2")).toEqual(b);
      const c = profile("u3", [["games", 4]]);
      feed(h, 2, [c]);
      st.meta = { ...st.meta, seq: 2 };
      await store.write(st);
      const raw = new Map((await store.exportRaw()).entries);
      expect(String(raw.get("profile\u0000u3")).startsWith("\u0000b64:")).toBe(true);

      const again = createJoinHandler(await store.load(), { purchaseExclusionMs: DAY });
      expect([again.profile("u1"), again.profile("u2"), again.profile("u3")]).toEqual([a, b, c]);
    } finally {
      await db.close();
      await rm(dir, { recursive: true, force: true });
    }
  });
});
