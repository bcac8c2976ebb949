/**
 * The results table and the file it is written to: bench/RESULTS.md for a run of every step with
 * the default number of events, bench/RESULTS-partial.md (ignored by git) for anything less.
 */
import { execFileSync } from "node:child_process";
import { writeFile } from "node:fs/promises";
import { availableParallelism, loadavg } from "node:os";
import { fileURLToPath } from "node:url";
import { SETTINGS } from "../bin/config-settings.js";
import { env, FULL_RUN, N, PARTITIONS, PUB_WINDOW, STEP_NODE_FLAGS } from "./options.js";
import { TARGETS, type Row } from "./report.js";
import { fmtInt } from "./util.js";
import { APP_SETTINGS } from "./in-process.js";

/** The app's other settings this run was given (steps 1-5 pass them on), as ", NAME=value". */
const otherSettings = () =>
  APP_SETTINGS.filter((k) => k !== "CHAINING" && k !== "RANKER" && env[k] !== undefined)
    .map((k) => `, ${k}=${env[k]}`)
    .join("");

function version(cmd: string, args: string[]): string {
  try {
    return execFileSync(cmd, args, { encoding: "utf8" }).trim().split("\n")[0] ?? "";
  } catch {
    return "unknown";
  }
}

/** The commit measured, and whether files outside bench/ differed from it (work in progress). */
function codeVersion(): string {
  const git = (args: string[]) => {
    try {
      return execFileSync("git", args, {
        encoding: "utf8",
        cwd: fileURLToPath(new URL("..", import.meta.url)),
      }).trimEnd();
    } catch {
      return "";
    }
  };
  const head = git(["log", "-1", "--format=%h %s"]);
  if (!head) return "not a git checkout";
  // Porcelain lines are "XY path": the leading space of " M path" is part of the format.
  const dirty = git(["status", "--porcelain", "--untracked-files=no"])
    .split("\n")
    .filter((l) => l.length > 3 && !l.slice(3).startsWith("bench/"));
  const subject = head.length > 80 ? `${head.slice(0, 80).replace(/[\s;,.:]+$/, "")}…` : head;
  return (
    `commit ${subject}` +
    (dirty.length
      ? `; ${dirty.length} tracked files outside bench/ had uncommitted changes, measured as they were`
      : "")
  );
}

function commandLine(): string {
  const knobs = Object.keys(env)
    .filter((k) => k.startsWith("BENCH_"))
    .sort()
    .map((k) => `${k}=${env[k]}`);
  const cmd = env.npm_lifecycle_event === "bench" ? "npm run bench" : "npx tsx bench/run.ts";
  return [...knobs, cmd].join(" ");
}

export function table(rows: Row[]): string {
  const head: Row = {
    step: "#",
    figure: "figure",
    value: "value",
    baseline: "baseline (same run)",
    ratio: "ratio",
    target: `target (${TARGETS.section})`,
  };
  const cols = Object.keys(head) as (keyof Row)[];
  const all = [head, ...rows];
  const width = (c: keyof Row) => Math.max(...all.map((r) => r[c].length));
  const line = (r: Row) => `| ${cols.map((c) => r[c].padEnd(width(c))).join(" | ")} |`;
  const sep = `| ${cols.map((c) => "-".repeat(width(c))).join(" | ")} |`;
  return [line(head), sep, ...rows.map(line)].join("\n");
}

/** What the run found before its first step: the machine, the tools' versions, the code. */
export function machineFacts() {
  return {
    nproc: version("nproc", []) || String(availableParallelism()),
    node: process.version,
    nats: version("nats-server", ["--version"]),
    h2load: version("h2load", ["--version"]),
    date: new Date().toISOString(),
    load: loadavg(),
    // Before any step writes bench/ files (freshness.svg): the tree as the run found it.
    code: codeVersion(),
  };
}

/** Prints the table and notes, and writes them to RESULTS.md or RESULTS-partial.md. */
export async function writeResults(
  rows: Row[],
  notes: string[],
  failures: number,
  machine: ReturnType<typeof machineFacts>,
  totalSecs: number,
  log: (msg: string) => void,
): Promise<void> {
  const t = table(rows);
  console.log(
    `\nreco-stream bench: ${fmtInt(N)} events, ${PARTITIONS} partitions, ${totalSecs.toFixed(0)} s\n`,
  );
  console.log(t);
  console.log(
    `\nload average (1 min): ${machine.load[0]!.toFixed(1)} at start, ${loadavg()[0]!.toFixed(1)} at end ` +
      `on ${machine.nproc} cores\n`,
  );
  for (const n of notes) console.log(`- ${n}`);

  const md = [
    "# Bench results",
    "",
    "Written by `bench/run.ts`; see bench/README.md for what each figure means. Treat every",
    "figure as ±25%: the machine is shared and noisy (NATS-NOTES.md).",
    "",
    "```",
    commandLine(),
    "```",
    "",
    `- machine: ${machine.nproc} cores (nproc), Node ${machine.node}, ${machine.nats}, ${machine.h2load}`,
    `- date: ${machine.date}; the whole run took ${totalSecs.toFixed(0)} s`,
    `- load average (1 min) at start ${machine.load[0]!.toFixed(1)}, at end ${loadavg()[0]!.toFixed(1)}: ` +
      "anything above ~0.5 means other work shared the 2 cores and the figures are pessimistic",
    `- code: ${machine.code}`,
    `- ${fmtInt(N)} events, ${PARTITIONS} partitions, publish window ${PUB_WINDOW}, CHAINING=${env.CHAINING ?? SETTINGS.chaining.default}, RANKER=${env.RANKER ?? SETTINGS.ranker.default}${otherSettings()}, ${STEP_NODE_FLAGS.length ? `step processes run with \`${STEP_NODE_FLAGS.join(" ")}\`` : "no extra node flags"}`,
    "",
    t,
    "",
    "## Notes",
    "",
    ...notes.map((n) => `- ${n}`),
    "",
  ].join("\n");
  // A run of every step (with the default number of events) is the one RESULTS.md records; a
  // subset or a smaller run writes RESULTS-partial.md (ignored by git), leaving those figures.
  const out = fileURLToPath(
    new URL(FULL_RUN ? "./RESULTS.md" : "./RESULTS-partial.md", import.meta.url),
  );
  // Formatted like the rest of the repo, so `prettier --check .` stays clean after a run.
  const formatted = await import("prettier")
    .then((p) => p.format(md, { parser: "markdown", printWidth: 100 }))
    .catch(() => md);
  await writeFile(out, formatted);
  log(`wrote ${out}${failures ? ` (${failures} failures)` : ""}`);
}
