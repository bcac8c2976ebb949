import {
  defaultBlend,
  defaultSourceSettings,
  presetNamed,
  SOURCE_NAMES,
  type BlendWeights,
} from "../../actors/sources/index.js";
import { VALIDATION_CUTS } from "../commands/eval.js";
import { readLog, type LogEvent } from "./log.js";
import { collectCases, MODES, score, type Method, type Mode } from "./run.js";
import { generateSparseLog } from "./sparse.js";
import { gridScores, settingsOf, type GridPoint } from "./weights.js";

/**
 * Chooses the e-commerce blend weights on the validation cuts (20%–45%, before every test cut)
 * of several logs at once: the shared REES46 sample and generated sparse logs of two sizes and
 * seeds. The criterion is the worst log's margin over its own best single source (HR@10, seen
 * items allowed), so a weighting that wins on one log by losing on another is not chosen; ties
 * go to the higher mean HR, then to fewer sources.
 *
 * `--mode=seen` or `--mode=new` weighs one mode only; the output also says where the preset's
 * current default ranks.
 *
 *   npx tsx bin/eval/choose-blend.ts [--mode=seen|new] [../shared/data/rees46/2019-Oct-head.csv]
 */
const RRF_K = [60, 10];
const MIN_CASES = 50;
/** POPULAR_FALLBACK's place in the grid's weights (bin/eval/weights.ts SOURCES). */
const POPULAR = 4;
const SINGLE: readonly Method[] = [
  "popularity",
  "HISTORY",
  "SIMILAR_ITEMS",
  "COLLABORATIVE",
  "TRENDING",
];

async function main() {
  const preset = presetNamed("ecommerce");
  const args = process.argv.slice(2);
  const only = args.find((a) => a.startsWith("--mode="))?.slice(7);
  if (only !== undefined && !MODES.includes(only as Mode))
    throw new Error(`--mode must be one of ${MODES.join(", ")}, got ${only}`);
  const rees = args.find((a) => !a.startsWith("--")) ?? "../shared/data/rees46/2019-Oct-head.csv";
  const logs: [string, LogEvent[]][] = [
    ["REES46", (await readLog(rees)).events],
    [
      "generated 3000x30000 seed 1",
      generateSparseLog({ users: 3000, items: 30000, categories: 60, seed: 1 }),
    ],
    [
      "generated 2000x20000 seed 2",
      generateSparseLog({ users: 2000, items: 20000, categories: 40, seed: 2 }),
    ],
  ];
  const perLog: {
    name: string;
    points: GridPoint[];
    best: number;
    source: string;
    popular: number[];
    weight: boolean;
  }[] = [];
  for (const [name, events] of logs) {
    const { cases } = collectCases(events, {
      preset,
      k: 10,
      testCuts: [],
      validationCuts: VALIDATION_CUTS,
      sources: defaultSourceSettings(preset),
      blend: defaultBlend(preset),
    });
    const rows = score(cases, VALIDATION_CUTS, defaultBlend(preset), 10, 1, SINGLE).rows;
    for (const mode of only ? [only as Mode] : MODES) {
      let best = 0;
      let source = "";
      for (const m of SINGLE)
        if ((rows[m]?.[mode].hr ?? 0) > best) [best, source] = [rows[m]![mode].hr, m];
      const points: GridPoint[] = [];
      let n = 0;
      for (const rrfK of RRF_K) {
        const g = gridScores(cases, VALIDATION_CUTS, mode, 10, rrfK);
        // Score normalisation does not depend on rrfK: once is enough.
        points.push(...g.points.filter((p) => p.m === "rank" || rrfK === RRF_K[0]));
        n = g.cases;
      }
      process.stderr.write(
        `${name} (${mode}): ${n} validation cases, best source ${source} ${best.toFixed(3)}\n`,
      );
      // Popularity's HR per cut: the grid point of popularity alone (its fill is the same list).
      const popular = points.find(
        (p) => p.m === "score" && p.w.every((w, q) => (q === POPULAR ? w > 0 : w === 0)),
      )!.perCut;
      perLog.push({
        name: `${name} ${mode}`,
        points,
        best,
        source,
        popular,
        // A margin over a few dozen cases is noise at this resolution (one case is 0.04).
        weight: n >= MIN_CASES,
      });
    }
  }
  const weighed = perLog.filter((l) => l.weight);
  const ranked = perLog[0]!.points
    .map((p, x) => {
      const margins = weighed.map((l) => l.points[x]!.hr - l.best);
      const mean = weighed.reduce((a, l) => a + l.points[x]!.hr, 0) / weighed.length;
      return { p, x, min: Math.min(...margins), mean, margins };
    })
    // DESIGN §8: never below popularity on any cut, of any log, in either mode (small ones too).
    .filter(({ x }) =>
      perLog.every((l) => l.points[x]!.perCut.every((h, c) => h >= l.popular[c]! - 1e-9)),
    )
    .sort((a, b) => b.min - a.min || b.mean - a.mean || a.p.used - b.p.used);
  // The top of the ranking, and where the preset's current default stands in it.
  const d = defaultBlend(preset);
  const current = JSON.stringify(d.weights);
  const sameWeights = (w: BlendWeights) =>
    SOURCE_NAMES.every((s) => (w[s] ?? 0) === (d.weights[s] ?? 0));
  const at = ranked.findIndex(
    (r) =>
      r.p.m === d.mode &&
      (d.mode === "score" || r.p.rrfK === (d.rrfK ?? 60)) &&
      sameWeights(settingsOf(r.p, r.p.rrfK).weights),
  );
  process.stdout.write(`the current default ${current} is number ${at + 1} of ${ranked.length}\n`);
  for (const r of [...ranked.slice(0, 15), ...(at >= 15 ? [ranked[at]!] : [])])
    process.stdout.write(
      `${JSON.stringify(settingsOf(r.p, r.p.rrfK).weights)} ${r.p.m} ${r.p.m === "rank" ? `k=${r.p.rrfK}` : ""}: worst margin ${r.min.toFixed(3)}, ` +
        `mean HR ${r.mean.toFixed(3)}; per log ${perLog
          .map(
            (l) => `${l.name} ${l.points[r.x]!.hr.toFixed(3)} (${l.source} ${l.best.toFixed(3)})`,
          )
          .join(", ")}\n`,
    );
}

await main();
