import { findEngine } from "../run-file.js";
import { Option, type Command } from "commander";
import { differenceInterval } from "../../actors/quality/index.js";
import type { QualityView } from "../../connectors/http/api-quality.js";
import { formatTable, type QueryIo } from "./query.js";

/**
 * `reco arms`: the A/B arms of a running engine side by side (DESIGN §7, README "Quality"): each
 * arm's prequential hit rate with its Wilson 95% interval, and each arm against the first (the
 * order of ARMS: the control) with the interval of the difference. It reads the engine's
 * `/v1/quality` (the JSON API, which reads the same gauges as /metrics), so it needs no NATS
 * access and shows what the console and Prometheus show.
 */
interface ArmsFlags {
  url?: string;
  window: "1h" | "24h" | "all";
  timeout: number;
  json?: boolean;
}

type ArmRow = QualityView["arms"][number];

const processIo: Pick<QueryIo, "out" | "err" | "setExitCode"> = {
  out: (line) => process.stdout.write(`${line}\n`),
  err: (line) => process.stderr.write(`${line}\n`),
  setExitCode: (code) => {
    process.exitCode = code;
  },
};

function defaultUrl(): string {
  if (process.env["WEB_URL"]) return process.env["WEB_URL"];
  if (process.env["WEB_PORT"]) return `http://127.0.0.1:${process.env["WEB_PORT"]}`;
  // The engine running on DATA_DIR (its run.json): the console may have moved off 8080.
  const engine = findEngine();
  return engine.ok && engine.info.web !== "" ? engine.info.web : "http://127.0.0.1:8080";
}

const pct = (x: number) => (x * 100).toFixed(2);

export function registerArmsCommand(
  program: Command,
  io: Pick<QueryIo, "out" | "err" | "setExitCode"> = processIo,
): void {
  program
    .command("arms")
    .description(
      "compare the A/B arms of a running engine: hit rate@10 with its 95% interval per arm, and each arm against the first",
    )
    .option(
      "--url <url>",
      "the engine's JSON API (default: $WEB_URL, $WEB_PORT, the engine of $DATA_DIR (run.json), or http://127.0.0.1:8080)",
    )
    .addOption(
      new Option("--window <window>", "window of event time")
        .choices(["1h", "24h", "all"])
        .default("all"),
    )
    .option("--timeout <ms>", "deadline of the request in milliseconds", (v) => Number(v), 5000)
    .option("--json", "print the comparison as JSON")
    .action(async (flags: ArmsFlags) => {
      const url = `${(flags.url ?? defaultUrl()).replace(/\/$/, "")}/v1/quality`;
      try {
        const arms = await readArms(url, flags.timeout);
        const rows = arms.filter((a) => a.window === flags.window);
        if (rows.length === 0)
          throw new Error(
            `the engine at ${url} runs no A/B arms (start it with ARMS, README "Quality")`,
          );
        const comparison = compare(rows);
        if (flags.json) io.out(JSON.stringify({ window: flags.window, ...comparison }, null, 2));
        else for (const line of formatComparison(flags.window, comparison)) io.out(line);
      } catch (err) {
        io.err(`reco arms: ${err instanceof Error ? err.message : String(err)}`);
        io.setExitCode(1);
      }
    });
}

async function readArms(url: string, timeoutMs: number): Promise<ArmRow[]> {
  let res: Response;
  try {
    res = await fetch(url, { signal: AbortSignal.timeout(timeoutMs) });
  } catch (err) {
    // fetch's own message is "fetch failed"; the reason (ECONNREFUSED, bad port) is its cause.
    const cause = (err as { cause?: { code?: string; message?: string } }).cause;
    const why =
      (err as Error).name === "TimeoutError"
        ? `no answer within ${timeoutMs} ms`
        : (cause?.code ?? cause?.message ?? String(err));
    throw new Error(`cannot reach the engine at ${url}: ${why}`, { cause: err });
  }
  if (!res.ok) throw new Error(`${url} answered ${res.status} ${res.statusText}`);
  const body = (await res.json()) as Partial<QualityView>;
  if (!Array.isArray(body.arms)) throw new Error(`${url} did not answer with the quality figures`);
  return body.arms;
}

export interface ArmsComparison {
  arms: (ArmRow & { lead: boolean })[];
  /** Each arm after the first against the first. */
  differences: {
    arm: string;
    against: string;
    difference: number;
    lower: number;
    upper: number;
    /** "ahead", "behind" or "undecided" (the interval holds 0). */
    verdict: "ahead" | "behind" | "undecided";
  }[];
}

export function compare(rows: readonly ArmRow[]): ArmsComparison {
  const best = Math.max(...rows.map((r) => r.hitRate));
  const control = rows[0]!;
  return {
    arms: rows.map((r) => ({ ...r, lead: r.cases > 0 && r.hitRate === best })),
    differences: rows.slice(1).map((r) => {
      const d = differenceInterval(r, control);
      return {
        arm: r.arm,
        against: control.arm,
        ...d,
        verdict: d.lower > 0 ? "ahead" : d.upper < 0 ? "behind" : "undecided",
      };
    }),
  };
}

export function formatComparison(window: string, c: ArmsComparison): string[] {
  const table = formatTable(
    ["ARM", "CASES", "HITS", "HIT RATE %", "95% INTERVAL %"],
    c.arms.map((a) => [
      a.arm + (a.lead ? " *" : ""),
      String(a.cases),
      String(a.hits),
      pct(a.hitRate),
      a.cases > 0 ? `${pct(a.lower)} .. ${pct(a.upper)}` : "-",
    ]),
    [false, true, true, true, false],
  );
  const lines = [
    `A/B arms, prequential HitRate@10, window ${window} (* highest)`,
    ...table.split("\n"),
  ];
  const cases = (arm: string) => c.arms.find((a) => a.arm === arm)?.cases ?? 0;
  for (const d of c.differences) {
    if (cases(d.arm) === 0 || cases(d.against) === 0) {
      lines.push(`${d.arm} - ${d.against}: no cases scored yet in one of them`);
      continue;
    }
    const sign = d.difference >= 0 ? "+" : "";
    lines.push(
      `${d.arm} - ${d.against}: ${sign}${pct(d.difference)} points (95%: ${pct(d.lower)} .. ${pct(d.upper)}): ` +
        (d.verdict === "undecided"
          ? "undecided, the interval holds 0: keep collecting"
          : `${d.arm} is ${d.verdict}`),
    );
  }
  return lines;
}
