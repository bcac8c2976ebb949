import { Command } from "commander";
import { registerArmsCommand } from "./commands/arms.js";
import { registerEvalCommand } from "./commands/eval.js";
import { registerQueryCommands } from "./commands/query.js";
import { registerReplayCommand } from "./commands/replay.js";
import { findEngine } from "./run-file.js";

const program = new Command("reco")
  .description("reco-stream: real-time recommendations over NATS JetStream")
  .showHelpAfterError();

for (const [role, what] of [
  ["start", "run everything in one process (same as `npm start`)"],
  ["worker", "run the stages of the partitions this worker leases, on a NATS cluster"],
  ["gateway", "serve gRPC from a replica of every partition, on a NATS cluster"],
] as const) {
  program
    .command(role)
    .description(`${what}; \`reco ${role} --help\` lists settings`)
    .allowUnknownOption()
    .helpOption(false)
    .argument("[settings...]")
    .action(async (settings: string[]) => {
      const { main } = await import("./main.js");
      await main(settings, role);
    });
}
program
  .command("url")
  .description(
    "print the address of the engine running on DATA_DIR (from its run.json): " +
      'e.g. curl "$(npx reco url web)v1/trending?window=1h"',
  )
  .argument("<what>", "web, grpc, metrics or nats")
  .option("--data-dir <dir>", "the engine's data folder (default: $DATA_DIR or ./data)")
  .action((what: string, opts: { dataDir?: string }) => {
    const names = ["web", "grpc", "metrics", "nats"] as const;
    if (!(names as readonly string[]).includes(what)) {
      process.stderr.write(`reco url: ${what} is not one of ${names.join(", ")}\n`);
      process.exitCode = 2;
      return;
    }
    const found = findEngine(opts.dataDir);
    if (!found.ok) {
      process.stderr.write(`reco url: ${found.why}\n`);
      process.exitCode = 1;
      return;
    }
    process.stdout.write(`${found.info[what as (typeof names)[number]]}\n`);
  });
registerReplayCommand(program);
registerQueryCommands(program);
registerEvalCommand(program);
registerArmsCommand(program);

await program.parseAsync(process.argv);
