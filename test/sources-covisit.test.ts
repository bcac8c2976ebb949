import { describe, expect, it } from "vitest";
import { createCovisit, ECOMMERCE } from "../actors/sources/index.js";
import type { SourceEvent } from "../actors/sources/index.js";

const H = 3_600_000;
const T0 = Date.UTC(2024, 0, 1);
const ev = (u: string, i: string, ts: number, t: SourceEvent["t"] = "view", sess?: string) => ({
  u,
  i,
  t,
  ts,
  c: "",
  r: -1,
  sess,
});

describe("similar items (co-visitation)", () => {
  it("pairs items touched by one user within 1 h, weighted by the stronger interaction", () => {
    const c = createCovisit({ preset: ECOMMERCE, normalise: false, halfLifeMs: Infinity });
    c.add(ev("u1", "a", T0));
    c.add(ev("u1", "b", T0 + 10 * 60_000, "cart"));
    c.add(ev("u1", "far", T0 + 3 * H)); // over an hour after both: no pair
    expect(c.similar("a", T0).map((x) => [x.item, x.score])).toEqual([["b", 3]]);
    expect(c.similar("b", T0).map((x) => [x.item, x.score])).toEqual([["a", 3]]);
    expect(c.similar("far", T0)).toEqual([]);
    expect(c.similar("a", T0)[0]!.why).toBe("viewed together with a");
  });

  it("pairs across more than 1 h within one session", () => {
    const c = createCovisit({ preset: ECOMMERCE, normalise: false });
    c.add(ev("u1", "a", T0, "view", "s1"));
    c.add(ev("u1", "b", T0 + 5 * H, "view", "s1"));
    expect(c.similar("a", T0 + 5 * H).map((x) => x.item)).toEqual(["b"]);
  });

  it("decays pairs by event time", () => {
    const c = createCovisit({ preset: ECOMMERCE, normalise: false, halfLifeMs: H });
    c.add(ev("u1", "a", T0));
    c.add(ev("u1", "b", T0));
    expect(c.similar("a", T0 + 2 * H)[0]!.score).toBe(0.25);
  });

  it("keeps a bounded number of neighbours per item, the strongest", () => {
    const k = 5;
    const c = createCovisit({ preset: ECOMMERCE, normalise: false, k, halfLifeMs: Infinity });
    // "hub" is co-visited with 40 items; item n40 … n44 many times more.
    for (let x = 0; x < 45; x++) {
      const times = x >= 40 ? 5 : 1;
      for (let y = 0; y < times; y++) {
        c.add(ev(`u${x}-${y}`, "hub", T0));
        c.add(ev(`u${x}-${y}`, `n${x}`, T0));
      }
    }
    const nb = c.similar("hub", T0, 100);
    expect(nb.length).toBeLessThan(3 * k);
    expect(nb.slice(0, k).map((x) => x.item)).toEqual(["n40", "n41", "n42", "n43", "n44"]);
  });

  it("normalised, an item seen everywhere is not everyone's best neighbour", () => {
    const c = createCovisit({ preset: ECOMMERCE, normalise: true, halfLifeMs: Infinity });
    for (let x = 0; x < 20; x++) {
      c.add(ev(`v${x}`, "everywhere", T0));
      c.add(ev(`v${x}`, `other${x}`, T0));
    }
    for (let x = 0; x < 3; x++) {
      c.add(ev(`w${x}`, "a", T0));
      c.add(ev(`w${x}`, "twin", T0));
      c.add(ev(`w${x}`, "everywhere", T0));
    }
    expect(c.similar("a", T0)[0]!.item).toBe("twin");
  });

  it("a user's candidates sum over their seeds and are explained by the strongest seed", () => {
    const c = createCovisit({ preset: ECOMMERCE, normalise: false, halfLifeMs: Infinity });
    for (const u of ["u1", "u2"]) {
      c.add(ev(u, "x", T0));
      c.add(ev(u, "y", T0));
    }
    c.add(ev("u3", "z", T0));
    c.add(ev("u3", "y", T0));
    const out = c.candidates(
      [
        { item: "x", score: 2, why: "" },
        { item: "z", score: 1, why: "" },
      ],
      T0,
    );
    expect(out.map((x) => [x.item, x.score, x.why])).toEqual([
      ["y", 2 + 0.5, "viewed together with x"],
    ]);
  });
});
