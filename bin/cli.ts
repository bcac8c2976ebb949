import { Command } from "commander";
import { registerArmsCommand } from "./commands/arms.js";
import { registerEvalCommand } from "./commands/eval.js";
import { registerQueryCommands } from "./commands/query.js";
import { registerReplayCommand } from "./commands/replay.js";

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
registerReplayCommand(program);
registerQueryCommands(program);
registerEvalCommand(program);
registerArmsCommand(program);

await program.parseAsync(process.argv);
