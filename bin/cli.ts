import { Command } from "commander";

const program = new Command("reco")
  .description("reco-stream: real-time recommendations over NATS JetStream")
  .showHelpAfterError();

// Subcommands register themselves here (see bin/commands/).

await program.parseAsync(process.argv);
