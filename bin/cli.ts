import { Command } from "commander";
import { registerQueryCommands } from "./commands/query.js";
import { registerReplayCommand } from "./commands/replay.js";

const program = new Command("reco")
  .description("reco-stream: real-time recommendations over NATS JetStream")
  .showHelpAfterError();

program
  .command("start")
  .description(
    "run everything in one process (same as `npm start`; `reco start --help` lists settings)",
  )
  .allowUnknownOption()
  .helpOption(false)
  .argument("[settings...]")
  .action(async (settings: string[]) => {
    const { main } = await import("./main.js");
    await main(settings);
  });
registerReplayCommand(program);
registerQueryCommands(program);

await program.parseAsync(process.argv);
