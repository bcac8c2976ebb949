import { findEngine } from "../run-file.js";
import { InvalidArgumentError, Option, type Command } from "commander";
import { REPLAY_FORMATS, type ReplayFormat } from "../replay/formats.js";
import { DEFAULT_SORT_BUFFER, formatSummary, replayFile } from "../replay/run.js";

function positiveInt(value: string): number {
  const n = Number(value);
  if (!Number.isInteger(n) || n <= 0) throw new InvalidArgumentError("must be a positive integer");
  return n;
}

function nonNegativeInt(value: string): number {
  const n = Number(value);
  if (!/^\d+$/.test(value) || !Number.isInteger(n))
    throw new InvalidArgumentError("must be 0 or more");
  return n;
}

function positiveNumber(value: string): number {
  const n = Number(value);
  if (!Number.isFinite(n) || n <= 0) throw new InvalidArgumentError("must be a positive number");
  return n;
}

/** `reco replay FILE`: publishes an event-log file into the EVENTS stream. */
export function registerReplayCommand(program: Command): void {
  program
    .command("replay")
    .description(
      "publish an event log (JSONL, REES46 CSV or MovieLens ratings.csv) to events.<event_type>; " +
        "event ids are deterministic, so re-running within the stream's duplicate window " +
        "(2 min by default) stores nothing twice; events go out in event-time order, and the " +
        "command ends with what the engine made of them (late, dead-lettered, duplicates)",
    )
    .argument("<file>", "event file (.jsonl, .csv, optionally .gz)")
    .option(
      "--nats-url <url>",
      "NATS server(s), comma-separated (default: NATS_URL, else the private server of `reco start` with the publisher credentials in DATA_DIR/nats-publisher.json)",
    )
    .addOption(
      new Option("--format <format>", "file format (default: detected)").choices(REPLAY_FORMATS),
    )
    .option("--movies <file>", "MovieLens movies.csv: first genre becomes category_code")
    .option("--limit <n>", "stop after n rows of the file (good or rejected)", positiveInt)
    .addOption(
      new Option(
        "--order <order>",
        "time: send in event-time order (sorted in memory up to --sort-buffer rows, with that " +
          "bound beyond); file: as in the file",
      )
        .choices(["time", "file"])
        .default("time"),
    )
    .option(
      "--sort-buffer <rows>",
      "rows held for sorting by event time (about 300 bytes each)",
      positiveInt,
      DEFAULT_SORT_BUFFER,
    )
    .option(
      "--wait <seconds>",
      "after sending, wait this long at most for the engine to catch up and report late and " +
        "dead-lettered events; 0: do not ask",
      nonNegativeInt,
      300,
    )
    .option(
      "--metrics-url <url>",
      "the engine's /metrics, for its duplicate count",
      defaultMetricsUrl(),
    )
    .option("--rate <n>", "at most n events per second", positiveNumber)
    .action(async (file: string, opts: ReplayCliOptions) => {
      const abort = new AbortController();
      // First Ctrl-C: stop reading and wait for the acks of what was sent; second: default exit.
      const onSigint = (): void => {
        process.stderr.write(
          "\ninterrupted: waiting for outstanding acks (Ctrl-C again to quit)\n",
        );
        abort.abort();
        process.removeListener("SIGINT", onSigint);
      };
      process.on("SIGINT", onSigint);
      try {
        const summary = await replayFile({
          file,
          natsUrl: opts.natsUrl,
          format: opts.format,
          moviesFile: opts.movies,
          limit: opts.limit,
          rate: opts.rate,
          order: opts.order,
          sortBuffer: opts.sortBuffer,
          awaitEngineMs: opts.wait * 1000,
          metricsUrl: opts.metricsUrl,
          stderr: process.stderr,
          signal: abort.signal,
        });
        process.stdout.write(`${formatSummary(summary)}\n`);
        if (summary.aborted) process.exitCode = 130;
        else if (summary.engine?.stopped) {
          process.stderr.write(`reco replay: ${summary.engine.note ?? "the engine stopped"}\n`);
          process.exitCode = 1;
        } else if (summary.sent === 0) {
          // Nothing reached the stream: a wrong file or format, not a success.
          process.stderr.write(
            summary.rows === 0
              ? `reco replay: ${file} holds no rows\n`
              : `reco replay: none of the ${summary.rows} rows of ${file} could be read as an event\n`,
          );
          process.exitCode = 1;
        }
      } catch (err) {
        // No stack trace for expected failures (no server, unknown format, publish rejected).
        process.stderr.write(`reco replay: ${err instanceof Error ? err.message : String(err)}\n`);
        process.exitCode = 1;
      } finally {
        process.removeListener("SIGINT", onSigint);
      }
    });
}

interface ReplayCliOptions {
  natsUrl?: string;
  format?: ReplayFormat;
  movies?: string;
  limit?: number;
  rate?: number;
  order: "time" | "file";
  sortBuffer: number;
  wait: number;
  metricsUrl: string;
}

/** METRICS_PORT's, else the engine running on DATA_DIR (its run.json), else :9464. */
function defaultMetricsUrl(): string {
  if (process.env.METRICS_PORT) return `http://127.0.0.1:${process.env.METRICS_PORT}/metrics`;
  const engine = findEngine();
  return engine.ok ? `${engine.info.metrics}metrics` : "http://127.0.0.1:9464/metrics";
}
