import { InvalidArgumentError, Option, type Command } from "commander";
import type { BlendSettings, BlendWeights } from "../../actors/sources/index.js";
import {
  defaultBlend,
  defaultSourceSettings,
  presetNamed,
  type SourcePreset,
  SOURCE_NAMES,
  type SourceName,
} from "../../actors/sources/index.js";
import { readLog, type LogEvent } from "../eval/log.js";
import { signTestP, type MetricRow } from "../eval/metrics.js";
import {
  collectCases,
  METHODS,
  MODES,
  score,
  type EvalResult,
  type Method,
  type Mode,
} from "../eval/run.js";
import { generateSparseLog, sampleUsers } from "../eval/sparse.js";
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
  /** Only this many users of the log, chosen by a hash of their id seeded with `seed`. */
  users?: number;
  /** Seed of the user sample and of a generated log. */
  seed?: number;
  /** A generated sparse log instead of a file: USERSxITEMS (bin/eval/sparse.ts). */
  generate?: { users: number; items: number };
  /** Every cut's HR and NDCG per method in the table. */
  perCut?: boolean;
  /** HR per method by the user's history length, pooled over the test cuts. */
  byHistory?: boolean;
}

/** The candidate sources alone (what "the best single source" is taken over). */
export const SINGLE_SOURCES: readonly Method[] = [
  "popularity",
  "HISTORY",
  "SIMILAR_ITEMS",
  "COLLABORATIVE",
  "COLLABORATIVE explicit",
  "TRENDING",
];

/** Runs the whole evaluation of one log (or of a generated one: `o.generate`). */
export async function runEval(
  path: string | undefined,
  o: EvalCommandOptions,
): Promise<EvalResult> {
  const say = o.quiet ? undefined : (l: string) => process.stderr.write(`${l}\n`);
  let events: LogEvent[];
  let format = "generated";
  if (o.generate) {
    events = generateSparseLog({
      ...o.generate,
      categories: Math.max(1, Math.round(o.generate.items / 500)),
      seed: o.seed ?? 1,
    });
  } else {
    if (path === undefined) throw new Error("a log, or --generate USERSxITEMS");
    const log = await readLog(path, { movies: o.movies });
    format = log.format;
    events = o.limit ? log.events.slice(0, o.limit) : log.events;
    say?.(`${path}: ${events.length} events (${log.rejected} rows rejected)`);
  }
  if (o.users) events = sampleUsers(events, o.users, o.seed ?? 1);
  const preset = presetNamed(o.preset ?? (format === "movielens" ? "movies" : "ecommerce"));
  say?.(`${events.length} events, preset ${preset.name}`);
  return evalEvents(events, preset, o);
}

/** The evaluation of events already read (a file's, a sample's or a generated log's). */
export function evalEvents(
  events: readonly LogEvent[],
  preset: SourcePreset,
  o: EvalCommandOptions,
): EvalResult {
  const say = o.quiet ? undefined : (l: string) => process.stderr.write(`${l}\n`);
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
  const { rows, perCut, discordant, byHistory } = score(cases, TEST_CUTS, bs, o.k, items);
  const pOf = (cut: number | undefined, mode: Mode, method: Method) => {
    const d = discordant.find((x) => x.cut === cut && x.mode === mode && x.method === method);
    return d ? signTestP(d.methodOnly, d.blendOnly) : 1;
  };
  const belowPopularity = perCut
    .filter((c) => c.blend < c.popularity - 1e-9)
    .map(({ cut, mode }) => ({ cut, mode }));
  const belowBestSource: EvalResult["belowBestSource"] = [];
  for (const mode of MODES) {
    const best = bestOf((m) => rows[m]?.[mode].hr);
    const blend = rows.blend?.[mode].hr ?? 0;
    if (best && blend < best.hr - 1e-9)
      belowBestSource.push({ mode, ...best, blend, p: pOf(undefined, mode, best.source) });
    for (const c of perCut.filter((x) => x.mode === mode)) {
      const b = bestOf((m) => c.hr[m]);
      if (b && c.blend < b.hr - 1e-9)
        belowBestSource.push({
          cut: c.cut,
          mode,
          ...b,
          blend: c.blend,
          p: pOf(c.cut, mode, b.source),
        });
    }
  }
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
    byHistory,
    belowPopularity,
    belowBestSource,
    discordant,
    als,
    validation,
  };
}

/** The single source with the highest HR (the first of SINGLE_SOURCES on a tie). */
function bestOf(hr: (m: Method) => number | undefined): { source: Method; hr: number } | undefined {
  let best: { source: Method; hr: number } | undefined;
  for (const m of SINGLE_SOURCES) {
    const v = hr(m);
    if (v !== undefined && (!best || v > best.hr)) best = { source: m, hr: v };
  }
  return best;
}

const f3 = (x: number) => x.toFixed(3);
const pct = (c: number) => `${Math.round(c * 100)}%`;

/** The result as a Markdown table (what the README's "Quality" section shows). */
export function formatTable(r: EvalResult, perCut = false, byHistory = false): string {
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
  out.push(
    r.belowBestSource.length === 0
      ? "blend below the best single source on no cut"
      : `blend below the best single source: ${r.belowBestSource
          .map(
            (b) =>
              `${b.cut === undefined ? "pooled" : pct(b.cut)} (${b.mode}) ${f3(b.blend)} < ${b.source} ${f3(b.hr)} (p ${b.p.toFixed(2)})`,
          )
          .join(", ")}`,
  );
  if (perCut) {
    const shown = METHODS.filter((m) => r.perCut.some((c) => (c.hr[m] ?? 0) > 0));
    out.push(
      `| cut | mode | cases | ${shown.map((m) => `${m} HR / NDCG`).join(" | ")} |`,
      `| --- | --- | --- | ${shown.map(() => "---").join(" | ")} |`,
    );
    for (const c of r.perCut)
      out.push(
        `| ${pct(c.cut)} | ${c.mode} | ${c.cases} | ${shown
          .map((m) => `${f3(c.hr[m] ?? 0)} / ${f3(c.ndcg[m] ?? 0)}`)
          .join(" | ")} |`,
      );
  }
  if (byHistory) {
    const shown = METHODS.filter((m) => r.byHistory.some((h) => (h.hr[m] ?? 0) > 0));
    out.push(
      `| items touched | mode | cases | ${shown.map((m) => `${m} HR`).join(" | ")} | best single source |`,
      `| --- | --- | --- | ${shown.map(() => "---").join(" | ")} | --- |`,
    );
    for (const h of r.byHistory) {
      const best = bestOf((m) => h.hr[m]);
      out.push(
        `| ${h.history} | ${h.mode} | ${h.cases} | ${shown.map((m) => f3(h.hr[m] ?? 0)).join(" | ")} | ` +
          `${best && best.hr > (h.hr.blend ?? 0) + 1e-9 ? `${best.source} above the blend` : "blend at or above"} |`,
      );
    }
  }
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

function parseSize(value: string): { users: number; items: number } {
  const m = /^(\d+)x(\d+)$/.exec(value);
  if (!m || Number(m[1]) <= 0 || Number(m[2]) <= 0)
    throw new InvalidArgumentError("expected USERSxITEMS, e.g. 3000x30000");
  return { users: Number(m[1]), items: Number(m[2]) };
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
    .argument("[log]", "event log, or a MovieLens directory (ratings.csv + movies.csv)")
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
    .option(
      "--users <n>",
      "only n users of the log, chosen by a seeded hash of their id",
      positiveInt,
    )
    .option("--seed <n>", "seed of --users and --generate (default 1)", positiveInt)
    .option(
      "--generate <users>x<items>",
      "evaluate a generated sparse log instead of a file (e.g. 3000x30000)",
      parseSize,
    )
    .option("--per-cut", "every cut's HR and NDCG per method")
    .option(
      "--by-history",
      "HR per method by the user's history length (items touched before the cut: 1, 2, 3–4, 5–9, 10+)",
    )
    .option("--json", "print the result as JSON")
    .action(async (log: string | undefined, opts: EvalCommandOptions) => {
      try {
        const r = await runEval(log, opts);
        process.stdout.write(
          opts.json
            ? `${JSON.stringify(r, null, 2)}\n`
            : `${formatTable(r, opts.perCut, opts.byHistory)}\n`,
        );
      } catch (err) {
        process.stderr.write(`reco eval: ${err instanceof Error ? err.message : String(err)}\n`);
        process.exitCode = 1;
      }
    });
}
