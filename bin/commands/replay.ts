import { InvalidArgumentError, Option, type Command } from "commander";
import { REPLAY_FORMATS, type ReplayFormat } from "../replay/formats.js";
import { defaultNatsUrl, formatSummary, replayFile } from "../replay/run.js";

function positiveInt(value: string): number {
  const n = Number(value);
  if (!Number.isInteger(n) || n <= 0) throw new InvalidArgumentError("must be a positive integer");
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
        "(2 min by default) stores nothing twice",
    )
    .argument("<file>", "event file (.jsonl, .csv, optionally .gz)")
    .option("--nats-url <url>", "NATS server(s), comma-separated", defaultNatsUrl())
    .addOption(
      new Option("--format <format>", "file format (default: detected)").choices(REPLAY_FORMATS),
    )
    .option("--movies <file>", "MovieLens movies.csv: first genre becomes category_code")
    .option("--limit <n>", "stop after n events", positiveInt)
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
          stderr: process.stderr,
          signal: abort.signal,
        });
        process.stdout.write(`${formatSummary(summary)}\n`);
        if (summary.aborted) process.exitCode = 130;
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
  natsUrl: string;
  format?: ReplayFormat;
  movies?: string;
  limit?: number;
  rate?: number;
}
