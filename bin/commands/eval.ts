import { InvalidArgumentError, Option, type Command } from "commander";
import type { BlendSettings, BlendWeights } from "../../actors/sources/blend.js";
import { defaultBlend, defaultSourceSettings } from "../../actors/sources/defaults.js";
import { presetNamed } from "../../actors/sources/preset.js";
import { SOURCE_NAMES, type SourceName } from "../../actors/sources/types.js";
import { readLog } from "../eval/log.js";
import type { MetricRow } from "../eval/metrics.js";
import { collectCases, METHODS, score, type EvalResult } from "../eval/run.js";
import { chooseWeights } from "../eval/weights.js";

/** The protocol's cuts: 50%, 55%, …, 95% of the time-ordered log. */
export const TEST_CUTS = [0.5, 0.55, 0.6, 0.65, 0.7, 0.75, 0.8, 0.85, 0.9, 0.95];
/** Validation cuts: the same spacing before the first test cut (the last one ends at 50%). */
export const VALIDATION_CUTS = [0.2, 0.25, 0.3, 0.35, 0.4, 0.45];

export interface EvalCommandOptions {
  movies?: string;
  preset?: string;
  k: number;
  validation?: boolean;
  weights?: BlendWeights;
  mode?: "score" | "rank";
  json?: boolean;
  /** Use only the first `limit` events of the log (a slice for quick runs and CI). */
  limit?: number;
  quiet?: boolean;
  /** Only what the blend and popularity need: no ALS training when the blend gives it no weight. */
  blendOnly?: boolean;
}

/** Runs the whole evaluation of one log. */
export async function runEval(path: string, o: EvalCommandOptions): Promise<EvalResult> {
  const log = await readLog(path, { movies: o.movies });
  const preset = presetNamed(o.preset ?? (log.format === "movielens" ? "movies" : "ecommerce"));
  const events = o.limit ? log.events.slice(0, o.limit) : log.events;
  const say = o.quiet ? undefined : (l: string) => process.stderr.write(`${l}\n`);
  say?.(`${path}: ${events.length} events (${log.rejected} rows rejected), preset ${preset.name}`);
  let bs: BlendSettings = defaultBlend(preset);
  if (o.weights) bs = { ...bs, weights: o.weights };
  if (o.mode) bs = { ...bs, mode: o.mode };
  const sources = defaultSourceSettings(preset);
  if (o.blendOnly && !o.validation && !(bs.weights.COLLABORATIVE ?? 0)) {
    delete sources.implicit;
    delete sources.explicit;
  }
  const { cases, als } = collectCases(events, {
    preset,
    k: o.k,
    testCuts: TEST_CUTS,
    validationCuts: o.validation ? VALIDATION_CUTS : undefined,
    sources,
    blend: bs,
    log: say,
  });
  let validation: EvalResult["validation"];
  if (o.validation) {
    const primary = preset.name === "movies" ? "new" : "seen";
    const v = chooseWeights(cases, VALIDATION_CUTS, primary, o.k);
    bs = v.chosen;
    validation = { cuts: VALIDATION_CUTS, cases: v.cases, chosen: v.chosen, hr: v.hr };
    say?.(
      `validation (${v.cases} cases, ${primary}): ${JSON.stringify(v.chosen)} HR ${v.hr.toFixed(3)}`,
    );
  }
  const items = new Set(events.map((e) => e.i)).size;
  const { rows, perCut } = score(cases, TEST_CUTS, bs, o.k, items);
  const belowPopularity = perCut
    .filter((c) => c.blend < c.popularity - 1e-9)
    .map(({ cut, mode }) => ({ cut, mode }));
  return {
    preset: preset.name,
    events: events.length,
    users: new Set(events.map((e) => e.u)).size,
    items,
    k: o.k,
    cuts: TEST_CUTS,
    blend: bs,
    rows,
    perCut,
    belowPopularity,
    als,
    validation,
  };
}

const f3 = (x: number) => x.toFixed(3);

/** The result as a Markdown table (what the README's "Quality" section shows). */
export function formatTable(r: EvalResult): string {
  const out: string[] = [];
  out.push(
    `${r.preset}: ${r.events} events, ${r.users} users, ${r.items} items; ` +
      `cuts ${r.cuts.map((c) => `${Math.round(c * 100)}%`).join(" ")}; top ${r.k}`,
  );
  const cases = (m: "seen" | "new") => r.rows.blend?.[m].cases ?? 0;
  out.push(
    `| method | HR@${r.k} seen | Recall seen | NDCG seen | HR@${r.k} new | Recall new | NDCG new | coverage |`,
    "| --- | --- | --- | --- | --- | --- | --- | --- |",
  );
  for (const m of METHODS) {
    const row = r.rows[m];
    if (!row) continue;
    if (row.seen.hr === 0 && row.new.hr === 0 && row.seen.coverage === 0) continue; // source off
    const s: MetricRow = row.seen;
    const n: MetricRow = row.new;
    out.push(
      `| ${m} | ${f3(s.hr)} | ${f3(s.recall)} | ${f3(s.ndcg)} | ${f3(n.hr)} | ${f3(n.recall)} | ${f3(n.ndcg)} | ${f3(s.coverage)} |`,
    );
  }
  out.push(
    `cases: ${cases("seen")} seen allowed, ${cases("new")} with a new target; ` +
      `blend ${r.blend.mode} ${Object.entries(r.blend.weights)
        .filter(([, w]) => (w ?? 0) > 0)
        .map(([s, w]) => `${s}=${w}`)
        .join(" ")}`,
  );
  out.push(
    r.belowPopularity.length === 0
      ? "blend below popularity on no cut"
      : `blend below popularity on ${r.belowPopularity.map((b) => `${Math.round(b.cut * 100)}% (${b.mode})`).join(", ")}`,
  );
  const ms = r.als.implicitMs;
  if (ms.length > 0)
    out.push(
      `implicit ALS: ${Math.round(ms.reduce((a, b) => a + b, 0) / ms.length)} ms per training, ` +
        `${(r.als.factorBytes / 1e6).toFixed(1)} MB of factors at the last cut`,
    );
  return out.join("\n");
}

function parseWeights(value: string): BlendWeights {
  const w: BlendWeights = {};
  for (const part of value.split(",")) {
    const [name, v] = part.split("=");
    const n = Number(v);
    if (!SOURCE_NAMES.includes(name as SourceName) || !Number.isFinite(n) || n < 0)
      throw new InvalidArgumentError(
        `expected SOURCE=weight,… with SOURCE one of ${SOURCE_NAMES.join(", ")}`,
      );
    w[name as SourceName] = n;
  }
  return w;
}

function positiveInt(value: string): number {
  const n = Number(value);
  if (!Number.isInteger(n) || n <= 0) throw new InvalidArgumentError("must be a positive integer");
  return n;
}

/** `reco eval LOG`: offline time-split evaluation of the sources, the blend and popularity. */
export function registerEvalCommand(program: Command): void {
  program
    .command("eval")
    .description(
      "time-split evaluation of an event log (REES46 CSV, MovieLens ratings.csv or its " +
        "directory, JSONL): HitRate, Recall, NDCG and coverage at k for each source, the blend, " +
        "popularity and the DESIGN §3.4–3.6 ranking",
    )
    .argument("<log>", "event log, or a MovieLens directory (ratings.csv + movies.csv)")
    .option("--movies <file>", "MovieLens movies.csv (genres become categories)")
    .addOption(
      new Option("--preset <preset>", "default: movies for MovieLens, else ecommerce").choices([
        "ecommerce",
        "movies",
      ]),
    )
    .option("-k, --k <n>", "list length", positiveInt, 10)
    .option("--validation", "choose the blend weights on cuts 20%–45% (before the test cuts)")
    .option("--weights <list>", "blend weights, e.g. HISTORY=2,SIMILAR_ITEMS=0.5", parseWeights)
    .addOption(new Option("--mode <mode>", "blend normalisation").choices(["score", "rank"]))
    .option("--limit <n>", "only the first n events of the log (in time order)", positiveInt)
    .option("--json", "print the result as JSON")
    .action(async (log: string, opts: EvalCommandOptions) => {
      try {
        const r = await runEval(log, opts);
        process.stdout.write(opts.json ? `${JSON.stringify(r, null, 2)}\n` : `${formatTable(r)}\n`);
      } catch (err) {
        process.stderr.write(`reco eval: ${err instanceof Error ? err.message : String(err)}\n`);
        process.exitCode = 1;
      }
    });
}
