import { existsSync } from "node:fs";
import { resolve } from "node:path";
import { describe, expect, it } from "vitest";
import { ECOMMERCE } from "../actors/sources/index.js";
import { evalEvents, runEval, SINGLE_SOURCES } from "../bin/commands/eval.js";
import { signTestP } from "../bin/eval/metrics.js";
import type { EvalResult } from "../bin/eval/run.js";
import { generateSparseLog, sampleUsers } from "../bin/eval/sparse.js";

/**
 * Quality on sparse logs (DESIGN §8): most users with a few events, a catalogue far larger than
 * any user sees. `reco eval` on generated logs (two seeds and sizes, a structure known in
 * advance, bin/eval/sparse.ts) and on a user sample of the shared REES46 log: the blend must not
 * be below the best single source, nor below popularity, pooled or on any cut.
 *
 * The tolerance, and why: a cut holds 20–50 cases and two methods often tie within a case or
 * two, so "below" means below by more than chance on the same cases. Every comparison is paired
 * (the same users, the same cuts), so it is an exact sign (McNemar) test on the cases where the
 * source hits and the blend misses or the other way round; a source is ahead when the one-sided
 * p-value is under 0.05 divided by the number of comparisons made on the log (Bonferroni: each
 * source on each cut and pooled, in both modes), so a log of equal methods fails one time in
 * twenty at most. Popularity pooled gets no tolerance at all: the blend must be at or above it;
 * nor does any single source pooled with seen items allowed. Every method is scored as serving
 * answers (the user's done items left out: bin/eval/run.ts listFor), so a repurchase the blend
 * may not serve counts for no single source either.
 */
const DATA = resolve("../shared/data");
const REES46 = `${DATA}/rees46/2019-Oct-head.csv`;

function describeResult(r: EvalResult): string {
  const rows = ["blend", ...SINGLE_SOURCES]
    .filter((m) => r.rows[m as keyof EvalResult["rows"]])
    .map((m) => {
      const row = r.rows[m as keyof EvalResult["rows"]]!;
      return `${m} ${row.seen.hr.toFixed(3)}/${row.new.hr.toFixed(3)}`;
    });
  return `${r.events} events, ${r.users} users, ${r.items} items; HR@10 seen/new: ${rows.join(", ")}`;
}

/**
 * Asserts the blend is not significantly below any single source, pooled or on any cut; and,
 * pooled with seen items allowed (the answers as served), at or above every single source.
 */
function expectNotBelowAnySource(r: EvalResult, minCases: number) {
  const comparisons = r.discordant.filter((d) => SINGLE_SOURCES.includes(d.method));
  const alpha = 0.05 / Math.max(1, comparisons.length);
  for (const mode of ["seen", "new"] as const) {
    const blend = r.rows.blend![mode];
    if (blend.cases < minCases) continue;
    expect(
      blend.hr,
      `blend below popularity pooled (${mode}): ${describeResult(r)}`,
    ).toBeGreaterThanOrEqual(r.rows.popularity![mode].hr);
  }
  for (const source of SINGLE_SOURCES)
    expect(
      r.rows.blend!.seen.hr,
      `blend below ${source} pooled (seen): ${describeResult(r)}`,
    ).toBeGreaterThanOrEqual(r.rows[source as keyof EvalResult["rows"]]?.seen.hr ?? 0);
  for (const d of comparisons) {
    const p = signTestP(d.methodOnly, d.blendOnly);
    const where = `${d.cut === undefined ? "pooled" : `cut ${d.cut}`} (${d.mode})`;
    expect(
      p,
      `${d.method} ahead of the blend ${where}: ${d.methodOnly} cases against ${d.blendOnly}; ${describeResult(r)}`,
    ).toBeGreaterThanOrEqual(alpha);
  }
}

describe("reco eval on sparse logs: the blend against every single source", () => {
  it("the exact sign test: symmetric counts are no evidence, a lopsided one is", () => {
    expect(signTestP(0, 5)).toBe(1);
    expect(signTestP(3, 3)).toBeCloseTo(0.65625, 9); // P(X ≥ 3 | n = 6)
    expect(signTestP(6, 0)).toBeCloseTo(1 / 64, 12);
    expect(signTestP(20, 5)).toBeLessThan(0.01);
  });

  it("generates the same sparse log from the same seed: most users with a few events", () => {
    const a = generateSparseLog({ users: 400, items: 20_000, categories: 40, seed: 7 });
    const b = generateSparseLog({ users: 400, items: 20_000, categories: 40, seed: 7 });
    expect(b).toEqual(a);
    const perUser = new Map<string, number>();
    for (const e of a) perUser.set(e.u, (perUser.get(e.u) ?? 0) + 1);
    const few = [...perUser.values()].filter((n) => n <= 5).length;
    expect(few / perUser.size).toBeGreaterThan(0.6);
    expect(new Set(a.map((e) => e.i)).size).toBeGreaterThan(1000);
    // A user sample keeps whole users, the same ones for the same seed.
    const s = sampleUsers(a, 100, 3);
    expect(new Set(s.map((e) => e.u)).size).toBe(100);
    expect(sampleUsers(a, 100, 3)).toEqual(s);
    for (const e of s) expect(perUser.get(e.u)).toBe(s.filter((x) => x.u === e.u).length);
  });

  for (const [users, items, seed] of [
    [1000, 20_000, 11],
    [1000, 30_000, 12],
  ] as const) {
    it(`generated ${users} users × ${items} items (seed ${seed})`, () => {
      const events = generateSparseLog({ users, items, categories: items / 500, seed });
      const r = evalEvents(events, ECOMMERCE, { k: 10, quiet: true });
      expect(r.rows.blend!.seen.cases, describeResult(r)).toBeGreaterThan(80);
      expectNotBelowAnySource(r, 50);
    }, 90_000);
  }

  it("a 1500-user sample of REES46", async () => {
    if (!existsSync(REES46))
      throw new Error(`${REES46} is missing: see ../shared/data/README.md (never in this repo)`);
    const r = await runEval(REES46, { k: 10, quiet: true, users: 1500, seed: 1 });
    expect(r.rows.blend!.seen.cases, describeResult(r)).toBeGreaterThan(30);
    expectNotBelowAnySource(r, 30);
  }, 90_000);
});
