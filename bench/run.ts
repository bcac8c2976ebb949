/**
 * `npm run bench`: the DESIGN.md §8 figures, each next to a baseline measured in the same run.
 * Every step runs in a child process of its own against a fresh nats-server with a temp store
 * (removed afterwards); each step is a module of bench/steps/:
 *   1. raw.ts: raw JetStream publish (fast publisher) and raw consume (consume(), AckPolicy.None)
 *   2. ingest.ts: end-to-end ingest of the same events through the app, start to caught up
 *   3. freshness.ts: publish → visible in GetRecommendations, under a stepped background load
 *   4. serving.ts (and 4b): GetRecommendations vs a bare grpc-js echo server
 *   5. fanout.ts, 6. recovery.ts, 7. memory.ts
 *   8. scale-out.ts: one worker pinned to one core against two pinned to a core each
 * This file runs them and hands their rows to results.ts, which prints the table and writes
 * bench/RESULTS.md. See bench/README.md for the knobs.
 */
import { execFileSync, spawn } from "node:child_process";
import { fileURLToPath } from "node:url";
import { appendFileSync } from "node:fs";
import { runtimeEnv } from "../bin/node-runtime.mjs";
import { APP_FROM_SOURCES } from "./app-process.js";
import { DEFAULT_GENERATOR, generateMessages } from "./generator.js";
import { ensureH2load } from "./h2load.js";
import { appConfig } from "./in-process.js";
import {
  env,
  FANOUT_CHANNELS,
  FANOUT_RATE,
  FANOUT_SECONDS,
  FANOUT_SUBSCRIBERS,
  FANOUT_TRIGGER_MS,
  INGEST_TIMEOUT_MS,
  log,
  MEMORY_DOUBLE_AT,
  MEMORY_USERS,
  N,
  PARTITIONS,
  PUB_WINDOW,
  RECOVERY_EVENTS,
  RECOVERY_IN_MEMORY,
  SCALE_EVENTS,
  recoveryOptions,
  SERVE_EVENTS,
  STEP_NODE_FLAGS,
  STEPS,
  T0,
} from "./options.js";
import type { Report, Row } from "./report.js";
import { machineFacts, writeResults } from "./results.js";
import { stepFanout } from "./steps/fanout.js";
import { stepIngest } from "./steps/ingest.js";
import { stepFreshness } from "./steps/freshness.js";
import { stepMemory } from "./steps/memory.js";
import { stepRaw } from "./steps/raw.js";
import { measureRecovery, stepRecovery } from "./steps/recovery.js";
import { stepScaleOut } from "./steps/scale-out.js";
import { stepServing } from "./steps/serving.js";

const T_START = performance.now();

const rows: Row[] = [];
const notes: string[] = [];
let failures = 0;
/** What every step writes into. */
const report: Report = {
  row: (r) => rows.push({ baseline: "", ratio: "", target: "", ...r }),
  note: (text) => notes.push(text),
  fail: () => failures++,
  log,
};

/** Child mode: runs one step in this (fresh) process and prints its result as one JSON line. */
async function runStep(name: string, consumeRate: number): Promise<void> {
  const msgs = () =>
    generateMessages(N, { ...DEFAULT_GENERATOR, start: Date.now() - DEFAULT_GENERATOR.spanMs });
  let rate: number | undefined;
  try {
    if (name === "1") rate = await stepRaw(report, msgs());
    else if (name === "2") await stepIngest(report, msgs(), consumeRate);
    else if (name === "3") await stepFreshness(report);
    else if (name === "4") await stepServing(report, msgs().slice(0, SERVE_EVENTS));
    else if (name === "5")
      await stepFanout(report, {
        subscribers: FANOUT_SUBSCRIBERS,
        channels: FANOUT_CHANNELS,
        seconds: FANOUT_SECONDS,
        rate: FANOUT_RATE,
        triggerMs: FANOUT_TRIGGER_MS,
        k: 10,
        config: appConfig,
      });
    else if (name === "6") await stepRecovery(report, recoveryOptions);
    else if (name === "7") {
      const memory = {
        users: MEMORY_USERS,
        doubleAt: MEMORY_DOUBLE_AT,
        partitions: PARTITIONS,
        ingestTimeoutMs: INGEST_TIMEOUT_MS,
        publishWindow: PUB_WINDOW,
      };
      if (!RECOVERY_IN_MEMORY) await stepMemory(report, memory);
      else {
        // Step 6 measured on step 7's point of the same size; its rows go first.
        const rows6: Row[] = [];
        const notes6: string[] = [];
        const report6: Report = {
          row: (r) => rows6.push({ baseline: "", ratio: "", target: "", ...r }),
          note: (text) => notes6.push(text),
          fail: () => failures++,
          log,
        };
        try {
          await stepMemory(report, memory, {
            users: RECOVERY_EVENTS,
            fn: (s) => measureRecovery(report6, s, recoveryOptions),
          });
        } finally {
          if (rows6.length === 0)
            rows6.push({
              step: "6",
              figure: "FAILED",
              value: "step 7 failed before its recovery measurement",
              baseline: "",
              ratio: "",
              target: "",
            });
          rows.unshift(...rows6);
          notes.unshift(...notes6);
        }
      }
    } else if (name === "8")
      await stepScaleOut(
        report,
        generateMessages(SCALE_EVENTS, {
          ...DEFAULT_GENERATOR,
          start: Date.now() - DEFAULT_GENERATOR.spanMs,
        }),
      );
    else throw new Error(`unknown step ${name}`);
  } catch (err) {
    failures++;
    const msg = err instanceof Error ? err.message.split("\n")[0] : String(err);
    log(`${name} FAILED: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}`);
    report.row({ step: name, figure: "FAILED", value: msg ?? "" });
  }
  const result: StepResult = { rows, notes, failures, ...(rate !== undefined ? { rate } : {}) };
  process.stdout.write(`${RESULT_PREFIX}${JSON.stringify(result)}\n`);
}

interface StepResult {
  rows: Row[];
  notes: string[];
  failures: number;
  /** Step 1: the raw consume rate, the baseline of step 2. */
  rate?: number;
}
const RESULT_PREFIX = "BENCH-RESULT ";

/**
 * Runs one step in a child process (same node flags, so tsx's loader too): every step gets a
 * fresh heap, so one step's garbage or leftovers cannot slow the next, and RSS is the step's own.
 */
async function spawnStep(name: string, consumeRate: number): Promise<StepResult> {
  const script = fileURLToPath(import.meta.url);
  const args = [
    ...process.execArgv,
    ...STEP_NODE_FLAGS,
    script,
    "--step",
    name,
    "--consume-rate",
    String(consumeRate),
  ];
  return new Promise((resolve) => {
    const child = spawn(process.execPath, args, {
      stdio: ["ignore", "pipe", "inherit"],
      // The app runs in it: with the node flags and environment `npm start` gives it.
      env: runtimeEnv({ ...env, RECO_BENCH_T0: String(T0) }),
    });
    let out = "";
    child.stdout.setEncoding("utf8").on("data", (c: string) => (out += c));
    child.once("exit", (code, signal) => {
      if (env.BENCH_STEP_STDOUT) appendFileSync(env.BENCH_STEP_STDOUT, `== step ${name}\n${out}`);
      const line = out.split("\n").find((l) => l.startsWith(RESULT_PREFIX));
      if (line) {
        resolve(JSON.parse(line.slice(RESULT_PREFIX.length)) as StepResult);
        return;
      }
      const why = `step process exited with ${signal ?? code} and no result`;
      resolve({
        rows: [{ step: name, figure: "FAILED", value: why, baseline: "", ratio: "", target: "" }],
        notes: [],
        failures: 1,
      });
    });
  });
}

async function main(): Promise<void> {
  if (STEPS.has("4") || STEPS.has("4b")) {
    try {
      ensureH2load(log);
    } catch (err) {
      console.error(`bench: ${(err as Error).message}`);
      process.exit(2);
    }
  }
  // Steps 6 and 7 start the app as `npm start` does: from dist/, built here if a source is newer.
  // Step 8's workers and gateway start through bin/reco.mjs, which runs dist/ when it is fresh.
  if ((STEPS.has("6") || STEPS.has("7") || STEPS.has("8")) && !APP_FROM_SOURCES)
    execFileSync(process.execPath, [fileURLToPath(new URL("../bin/build.mjs", import.meta.url))], {
      stdio: "inherit",
    });
  const machine = machineFacts();
  let consumeRate = NaN;
  for (const name of ["1", "2", "3", "4", "5", "6", "7", "8"]) {
    // 4b runs in step 4's process: it needs that step's app and echo baseline.
    if (!STEPS.has(name) && !(name === "4" && STEPS.has("4b"))) continue;
    if (name === "6" && RECOVERY_IN_MEMORY) continue; // measured in step 7's process
    const r = await spawnStep(name, consumeRate);
    rows.push(...r.rows);
    notes.push(...r.notes);
    failures += r.failures;
    if (r.rate !== undefined) consumeRate = r.rate;
  }
  await writeResults(rows, notes, failures, machine, (performance.now() - T_START) / 1000, log);
}

const stepArg = process.argv.indexOf("--step");
const entry =
  stepArg > 0
    ? () =>
        runStep(
          process.argv[stepArg + 1] ?? "",
          Number(process.argv[process.argv.indexOf("--consume-rate") + 1]),
        )
    : main;
entry().then(
  () => process.exit(failures ? 1 : 0),
  (err: unknown) => {
    console.error(err);
    process.exit(2);
  },
);
