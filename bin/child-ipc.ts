import type { FromParseChild } from "./parse-process.js";

/**
 * The IPC side of a child process `reco start` forks (the parse process, the ingest process):
 * refuses to run by hand, exits when the parent is gone, leaves stopping to the parent, and
 * returns how to send to it.
 */
export function childChannel(entry: string, setting: string): (m: FromParseChild) => void {
  if (!process.send) {
    console.error(`${entry} is forked by \`reco start\` (${setting}), not run by hand`);
    process.exit(2);
  }
  // The parent is gone (SIGKILLed, say): there is no one left to serve. Exit at once, which also
  // releases the LevelDB lock for the next parent's child; the snapshot makes this safe.
  process.on("disconnect", () => process.exit(0));
  // Ctrl-C reaches the whole process group and systemd signals the whole cgroup: the parent
  // decides when this process stops (the "stop" message), so it drains after the parent has begun.
  process.on("SIGINT", () => undefined);
  process.on("SIGTERM", () => undefined);
  return (m) => {
    if (process.connected) process.send!(m, (err: Error | null) => err && undefined);
  };
}
