import { spawn, type ChildProcess, type StdioOptions } from "node:child_process";
import { fileURLToPath } from "node:url";
import { tsxFlags } from "../bin/tsx-flags.js";

/** Absolute path of a file of this repo, from a path relative to bench/. */
export const repoPath = (rel: string) => fileURLToPath(new URL(rel, import.meta.url));

/**
 * Runs a TypeScript file of this repo in a node child with tsx loaded (and an IPC channel).
 * `npm start` runs `tsx bin/main.ts`, whose CLI starts a node child with exactly the flags of
 * tsxFlags(): running node with them directly gives the same process minus the wrapper, so a
 * SIGKILL reaches the app itself.
 */
export function spawnTs(
  script: string,
  args: string[],
  options: { env?: NodeJS.ProcessEnv; stdio?: StdioOptions; nodeFlags?: string[] } = {},
): ChildProcess {
  return spawn(process.execPath, [...tsxFlags(), ...(options.nodeFlags ?? []), script, ...args], {
    stdio: options.stdio ?? ["ignore", "inherit", "inherit", "ipc"],
    env: options.env ?? process.env,
  });
}

/** Resolves with the first IPC message from `child` that `pick` accepts (undefined: keep waiting). */
export function nextMessage<T>(
  child: ChildProcess,
  pick: (m: unknown) => T | undefined,
  timeoutMs = 60_000,
): Promise<T> {
  return new Promise<T>((resolve, reject) => {
    const onMessage = (m: unknown) => {
      const v = pick(m);
      if (v === undefined) return;
      done();
      resolve(v);
    };
    const onExit = (code: number | null, signal: string | null) => {
      done();
      reject(new Error(`child exited with ${signal ?? code} before answering`));
    };
    const t = setTimeout(() => {
      done();
      reject(new Error(`no answer from the child within ${timeoutMs} ms`));
    }, timeoutMs);
    const done = () => {
      clearTimeout(t);
      child.off("message", onMessage);
      child.off("exit", onExit);
    };
    child.on("message", onMessage);
    child.once("exit", onExit);
  });
}

/** SIGTERM, then SIGKILL after `graceMs`; resolves when the child is gone. */
export async function stopChild(child: ChildProcess, graceMs = 5000): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const gone = new Promise<void>((r) => child.once("exit", () => r()));
  child.kill("SIGTERM");
  const t = setTimeout(() => child.kill("SIGKILL"), graceMs);
  await gone;
  clearTimeout(t);
}
