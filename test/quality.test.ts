import { existsSync } from "node:fs";
import { resolve } from "node:path";
import { describe, expect, it } from "vitest";
import { runEval } from "../bin/commands/eval.js";
import type { EvalResult } from "../bin/eval/run.js";

/**
 * Quality in CI: `reco eval` on a slice of each shared log; the blend must
 * not fall below plain popularity, pooled over the cuts, in either scoring. The shared logs are
 * never in the repo: CI has ../shared beside the clone.
 */
const DATA = resolve("../shared/data");
const REES46 = `${DATA}/rees46/2019-Oct-head.csv`;
const MOVIELENS = `${DATA}/ml-latest-small`;

function requireData(path: string) {
  if (!existsSync(path))
    throw new Error(
      `${path} is missing: the quality test reads the shared logs from ../shared/data ` +
        "(see ../shared/data/README.md; they are never committed to this repo)",
    );
}

function verdict(r: EvalResult): string {
  const row = (m: "blend" | "popularity") =>
    `${m} HR@10 seen ${r.rows[m]!.seen.hr.toFixed(3)} new ${r.rows[m]!.new.hr.toFixed(3)}`;
  return `${r.preset}, ${r.events} events: ${row("blend")}; ${row("popularity")}; per cut ${r.perCut
    .map(
      (c) =>
        `${Math.round(c.cut * 100)}%/${c.mode} ${c.blend.toFixed(2)}-${c.popularity.toFixed(2)}`,
    )
    .join(" ")}`;
}

function expectBlendNotBelowPopularity(r: EvalResult) {
  const blend = r.rows.blend!;
  const pop = r.rows.popularity!;
  expect(blend.seen.cases, "test cases").toBeGreaterThan(20);
  expect(
    blend.seen.hr,
    `blend below popularity (seen allowed): ${verdict(r)}`,
  ).toBeGreaterThanOrEqual(pop.seen.hr);
  expect(
    blend.new.hr,
    `blend below popularity (new items only): ${verdict(r)}`,
  ).toBeGreaterThanOrEqual(pop.new.hr);
}

describe("quality: the blend against popularity on the shared logs", () => {
  it("REES46 (first 12,000 events): blend ≥ popularity, and well above it with seen items allowed", async () => {
    requireData(REES46);
    const r = await runEval(REES46, { k: 10, limit: 12_000, quiet: true, blendOnly: true });
    expectBlendNotBelowPopularity(r);
    expect(r.rows.blend!.seen.hr, verdict(r)).toBeGreaterThan(0.8);
  }, 120_000);

  it("MovieLens (first 50,000 ratings): blend ≥ popularity on new items", async () => {
    requireData(MOVIELENS);
    const r = await runEval(MOVIELENS, { k: 10, limit: 50_000, quiet: true, blendOnly: true });
    expectBlendNotBelowPopularity(r);
  }, 120_000);
});
