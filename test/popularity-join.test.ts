import { describe, it, expect } from "vitest";
import fc from "fast-check";
import { createStageState } from "../state/store.js";
import { feedJoin } from "./helpers/join-feed.js";
import type { ProfileRecord, PopularityRow } from "../actors/stages/index.js";
import {
  createJoinHandler,
  EXPIRED_PROFILES_KEPT,
  joinCandidates,
  type Candidate,
  completeRecommendations,
  createPopularityTable,
  topRows,
} from "../actors/stages/index.js";
import { DAY, HOUR } from "../actors/contract/index.js";

const NOW = Date.UTC(2024, 0, 8, 12, 0, 0);
const FALLBACK = { size: 10, score: 0.1 };

function row(
  item: string,
  category: string,
  purchases: number,
  extra: Partial<PopularityRow> = {},
) {
  return { item, purchases, category, brand: "", avgPrice: 0, wm: NOW, ...extra } as PopularityRow;
}

function tableOf(rows: PopularityRow[]) {
  const t = createPopularityTable();
  for (const r of rows) t.apply(r);
  return t;
}

function profile(top: [string, number][], pur: [string, number][] = [], u = "u1"): ProfileRecord {
  return { u, top, pur, wm: NOW };
}

const ids = (cs: Candidate[]) => cs.map((c) => [c.row.item, c.score]);

describe("createPopularityTable", () => {
  it("should list the top rows by purchases descending, ties by item id", () => {
    const t = tableOf([row("b", "x", 5), row("a", "y", 5), row("c", "x", 9), row("d", "x", 1)]);
    expect(t.top(10).map((r) => r.item)).toEqual(["c", "a", "b", "d"]);
    expect(t.top(2).map((r) => r.item)).toEqual(["c", "a"]);
    expect(t.size).toBe(4);
  });

  it("should give the top rows a full sort gives, for any n, after any sequence of applies", () => {
    const t = createPopularityTable();
    const all = new Map<string, PopularityRow>();
    let seed = 7;
    const next = (m: number) => (seed = (seed * 1103515245 + 12345) % 2147483648) % m;
    const sorted = () =>
      [...all.values()]
        .filter((r) => r.purchases > 0)
        .sort((a, b) => b.purchases - a.purchases || (a.item < b.item ? -1 : 1));
    for (let step = 0; step < 3000; step++) {
      // Few distinct purchase counts: many ties, decided by item id.
      const r = row(`i${next(60)}`, `c${next(3)}`, next(6));
      all.set(r.item, r);
      t.apply(r);
      const n = [1, 3, 10, 16, 40, 100][next(6)]!;
      expect(t.top(n)).toEqual(sorted().slice(0, n));
    }
    expect(topRows(sorted().reverse(), 5)).toEqual(sorted().slice(0, 5));
    expect(topRows(sorted(), 0)).toEqual([]);
  });

  it("should list a category's rows", () => {
    const t = tableOf([row("b", "x", 5), row("a", "y", 5), row("c", "x", 9)]);
    expect([...t.category("x")].map((r) => r.item).sort()).toEqual(["b", "c"]);
    expect([...t.category("nope")]).toEqual([]);
  });

  it("should replace a row on a new apply, moving it between categories", () => {
    const t = tableOf([row("a", "x", 1)]);
    t.apply(row("a", "y", 3));
    expect([...t.category("x")]).toEqual([]);
    expect([...t.category("y")].map((r) => [r.item, r.purchases])).toEqual([["a", 3]]);
    expect(t.top(5).map((r) => [r.item, r.purchases])).toEqual([["a", 3]]);
  });

  it("should remove a row whose purchases dropped to 0", () => {
    const t = tableOf([row("a", "x", 2), row("b", "x", 1)]);
    t.apply(row("a", "x", 0));
    expect(t.size).toBe(1);
    expect(t.top(10).map((r) => r.item)).toEqual(["b"]);
    expect([...t.category("x")].map((r) => r.item)).toEqual(["b"]);
  });

  it("should track the highest progress seen, -1 before any", () => {
    const t = createPopularityTable();
    expect(t.wm).toBe(-1);
    t.apply(row("a", "x", 1, { wm: 50 }));
    t.apply(row("b", "x", 1, { wm: 20 }));
    expect(t.wm).toBe(50);
  });
});

describe("joinCandidates", () => {
  const table = tableOf([
    row("e1", "electronics", 10),
    row("e2", "electronics", 4),
    row("b1", "books", 30),
    row("p9", "books", 10),
    row("p10", "books", 10),
    row("t1", "toys", 50), // not a top category of the user
  ]);

  it("should score interest × purchases / 100 and rank by score, ties by plain string order", () => {
    const p = profile([
      ["electronics", 5],
      ["books", 2],
    ]);
    // b1: 2 × 30 / 100 = 0.6; e1: 5 × 10 / 100 = 0.5;
    // e2: 5 × 4 / 100 = 0.2; p10: 2 × 10 / 100 = 0.2; p9: 2 × 10 / 100 = 0.2.
    // Ties at 0.2 in plain string order: "e2" < "p10" < "p9".
    expect(ids(joinCandidates(p, table, NOW, DAY))).toEqual([
      ["b1", 0.6],
      ["e1", 0.5],
      ["e2", 0.2],
      ["p10", 0.2],
      ["p9", 0.2],
    ]);
  });

  it("should exclude items purchased in the last 24 h, and only those", () => {
    const p = profile(
      [["electronics", 5]],
      [
        ["e1", NOW - DAY + 1], // window ended inside the 24 h: excluded
        ["e2", NOW - DAY], // window ended exactly 24 h ago: no longer excluded
      ],
    );
    expect(ids(joinCandidates(p, table, NOW, DAY))).toEqual([["e2", 0.2]]);
  });

  it("should give no candidates to a profile without categories", () => {
    expect(joinCandidates(profile([]), table, NOW, DAY)).toEqual([]);
  });
});

describe("createJoinHandler", () => {
  const feed = (h: ReturnType<typeof createJoinHandler>, seq: number, recs: ProfileRecord[]) =>
    feedJoin(h, seq, recs, NOW);

  it("should keep the latest profile per user and join it on demand", () => {
    const h = createJoinHandler(createStageState(), { purchaseExclusionMs: DAY });
    const table = tableOf([row("e1", "electronics", 10), row("b1", "books", 20)]);
    feed(h, 1, [profile([["electronics", 5]])]);
    feed(h, 2, [profile([["books", 3]])]);
    expect(h.profile("u1")?.top).toEqual([["books", 3]]);
    // 3 × 20 / 100 = 0.6
    expect(ids(h.candidates("u1", table, NOW))).toEqual([["b1", 0.6]]);
    expect(h.candidates("stranger", table, NOW)).toEqual([]);
  });

  // A user whose history left the horizon was told "unknown user".
  it("should remember, with an empty profile, a user whose history left the horizon", () => {
    const h = createJoinHandler(createStageState(), { purchaseExclusionMs: DAY });
    feed(h, 1, [profile([["books", 3]])]);
    feed(h, 2, [profile([], [])]);
    expect(h.profile("u1")).toEqual(profile([], []));
    expect(h.candidates("u1", tableOf([row("b1", "books", 20)]), NOW)).toEqual([]);
    // An empty profile of a user never seen here is nothing to remember.
    feed(h, 3, [profile([], [], "u2")]);
    expect(h.profile("u2")).toBeUndefined();
    const answer = completeRecommendations(
      "u1",
      1,
      [],
      h.profile("u1"),
      tableOf([row("b1", "books", 20)]),
      NOW,
      FALLBACK,
    );
    expect(answer.statusMessage).toBe("history older than the 24 h horizon: popular fallback");
    expect(
      completeRecommendations(
        "u9",
        1,
        [],
        undefined,
        tableOf([row("b1", "books", 20)]),
        NOW,
        FALLBACK,
      ).statusMessage,
    ).toBe("unknown user: popular fallback");
  });

  it("should keep at most EXPIRED_PROFILES_KEPT expired users, oldest first out", () => {
    const state = createStageState();
    const h = createJoinHandler(state, { purchaseExclusionMs: DAY });
    const n = EXPIRED_PROFILES_KEPT + 2;
    const users = Array.from({ length: n }, (_, i) => `x${i}`);
    feed(
      h,
      1,
      users.map((u) => profile([["books", 1]], [], u)),
    );
    feed(
      h,
      2,
      users.map((u) => profile([], [], u)),
    );
    expect(h.profile("x0")).toBeUndefined();
    expect(h.profile("x1")).toBeUndefined();
    expect(h.profile("x2")).toEqual(profile([], [], "x2"));
    expect(state.map("profile").size).toBe(EXPIRED_PROFILES_KEPT);
  });

  it("finds the expired users of a loaded snapshot from the profiles' text, parsing none", () => {
    const state = createStageState();
    const n = EXPIRED_PROFILES_KEPT;
    // A category holding the empty-list text must not read as empty.
    state.loadMapEntry("profile", "live", JSON.stringify(profile([['"top":[]', 1]], [], "live")));
    for (let i = 0; i < n; i++)
      state.loadMapEntry("profile", `x${i}`, JSON.stringify(profile([], [], `x${i}`)));
    const parse = JSON.parse;
    let parsed = 0;
    JSON.parse = ((text: string, ...rest: []) => {
      if (text.startsWith('{"u":')) parsed++;
      return parse(text, ...rest);
    }) as typeof JSON.parse;
    let h: ReturnType<typeof createJoinHandler>;
    try {
      h = createJoinHandler(state, { purchaseExclusionMs: DAY });
    } finally {
      JSON.parse = parse;
    }
    expect(parsed).toBe(0);
    // One more expired user: the oldest loaded one goes, the live one stays.
    feed(h, 1, [profile([["books", 1]], [], "y")]);
    feed(h, 2, [profile([], [], "y")]);
    expect(h.profile("x0")).toBeUndefined();
    expect(h.profile("x1")).toEqual(profile([], [], "x1"));
    expect(h.profile("live")?.top).toEqual([['"top":[]', 1]]);
    expect(state.map("profile").size).toBe(n + 1);
  });
});

describe("completeRecommendations (fallback)", () => {
  // 12 items: purchases 12, 11, 10, 10, 9, ... so there is a tie to break by id.
  const many = tableOf([
    row("i01", "a", 12),
    row("i02", "a", 11),
    row("i04", "b", 10),
    row("i03", "b", 10),
    row("i05", "c", 9),
    row("i06", "c", 8),
    row("i07", "c", 7),
    row("i08", "c", 6),
    row("i09", "c", 5),
    row("i10", "c", 4),
    row("i11", "c", 3),
    row("i12", "c", 2),
  ]);

  it("should give a cold-start user the top 10 by purchases with score 0.1, POPULAR_FALLBACK", () => {
    const r = completeRecommendations("new", 100, [], undefined, many, NOW, FALLBACK);
    expect(r.items.map((i) => [i.itemId, i.rank, i.score, i.source])).toEqual(
      ["i01", "i02", "i03", "i04", "i05", "i06", "i07", "i08", "i09", "i10"].map((id, k) => [
        id,
        k + 1,
        0.1,
        "POPULAR_FALLBACK",
      ]),
    );
    expect(r.userId).toBe("new");
    expect(r.topCategories).toEqual([]);
    expect(r.watermark).toBe(NOW);
    expect(r.statusMessage).not.toBe("");
  });

  it("should give at most n items", () => {
    const r = completeRecommendations("new", 3, [], undefined, many, NOW, FALLBACK);
    expect(r.items.map((i) => i.itemId)).toEqual(["i01", "i02", "i03"]);
  });

  it("should fill a short personalised list from the popular list, skipping duplicates", () => {
    const p = profile([["c", 4]]);
    const personalised: Candidate[] = [
      { row: row("i05", "c", 9), score: (4 * 9) / 100 },
      { row: row("i01", "a", 12), score: 0.05 },
    ];
    const r = completeRecommendations("u1", 5, personalised, p, many, NOW, FALLBACK);
    expect(r.items.map((i) => [i.itemId, i.rank, i.score, i.source])).toEqual([
      ["i05", 1, 0.36, "PERSONALIZED"],
      ["i01", 2, 0.05, "PERSONALIZED"],
      ["i02", 3, 0.1, "POPULAR_FALLBACK"],
      ["i03", 4, 0.1, "POPULAR_FALLBACK"],
      ["i04", 5, 0.1, "POPULAR_FALLBACK"],
    ]);
    expect(r.topCategories).toEqual([{ category: "c", interest: 4 }]);
    expect(r.statusMessage).toBe("");
  });

  it("should keep only n personalised items when there are more", () => {
    const personalised: Candidate[] = ["x1", "x2", "x3"].map((i, k) => ({
      row: row(i, "c", 1),
      score: 1 - k / 10,
    }));
    const r = completeRecommendations(
      "u1",
      2,
      personalised,
      profile([["c", 1]]),
      many,
      NOW,
      FALLBACK,
    );
    expect(r.items.map((i) => [i.itemId, i.source])).toEqual([
      ["x1", "PERSONALIZED"],
      ["x2", "PERSONALIZED"],
    ]);
  });

  it("should carry category, brand, average price and purchases of each item", () => {
    const t = tableOf([row("a", "books", 3, { brand: "acme", avgPrice: 12.5 })]);
    const r = completeRecommendations("u", 1, [], undefined, t, NOW, FALLBACK);
    expect(r.items[0]).toEqual({
      itemId: "a",
      score: 0.1,
      rank: 1,
      category: "books",
      brand: "acme",
      averagePrice: 12.5,
      source: "POPULAR_FALLBACK",
      purchases: 3,
    });
  });

  it("should answer an empty list with a status message before any purchase", () => {
    const r = completeRecommendations(
      "u",
      10,
      [],
      undefined,
      createPopularityTable(),
      -1,
      FALLBACK,
    );
    expect(r.items).toEqual([]);
    expect(r.statusMessage.length).toBeGreaterThan(0);
    expect(r.watermark).toBeNull();
  });

  // Regression: DESIGN §3.6 "Users never get an empty answer once any purchase has been seen."
  // The fallback used to drop the user's own recent purchases too, so a user who bought the only
  // popular item got an empty list with the message "no purchases seen yet", which was false.
  it("should not answer empty once a purchase was seen, even if the user bought every popular item", () => {
    const t = tableOf([row("only", "books", 1)]);
    const p = profile([["books", 1]], [["only", NOW - HOUR]]);
    const personalised = joinCandidates(p, t, NOW, DAY); // excluded: bought in the last 24 h
    expect(personalised).toEqual([]);
    const r = completeRecommendations("u1", 10, personalised, p, t, NOW, FALLBACK);
    expect(r.items.length).toBeGreaterThan(0);
  });
});

describe("joinCandidates with a limit", () => {
  it("returns exactly the first `limit` of the full ranking, for random tables and profiles", () => {
    const cats = ["a", "b", "c", "d"];
    fc.assert(
      fc.property(
        fc.array(
          fc.record({
            item: fc.stringMatching(/^p[0-9]{1,2}$/),
            category: fc.constantFrom(...cats),
            purchases: fc.integer({ min: 0, max: 6 }),
          }),
          { maxLength: 60 },
        ),
        fc.uniqueArray(fc.constantFrom(...cats), { maxLength: 3 }),
        fc.array(fc.integer({ min: 1, max: 9 }), { minLength: 3, maxLength: 3 }),
        fc.array(fc.stringMatching(/^p[0-9]{1,2}$/), { maxLength: 8 }),
        fc.integer({ min: 1, max: 12 }),
        (rows, top, interests, bought, limit) => {
          const table = createPopularityTable();
          for (const r of rows) table.apply({ ...r, brand: "", avgPrice: 0, wm: 0 });
          const profile = {
            u: "u",
            top: top.map((c, k) => [c, interests[k]!] as [string, number]),
            pur: [...new Set(bought)].map((i) => [i, 1000] as [string, number]),
            wm: 1000,
          };
          const full = joinCandidates(profile, table, 1000, 5000).slice(0, limit);
          const limited = joinCandidates(profile, table, 1000, 5000, limit).slice(0, limit);
          expect(limited.map((c) => [c.row.item, c.score])).toEqual(
            full.map((c) => [c.row.item, c.score]),
          );
        },
      ),
      { numRuns: 500, seed: 7 },
    );
  });
});
