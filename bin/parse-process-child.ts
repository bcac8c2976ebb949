import { spawn, type ChildProcess } from "node:child_process";
import { createRequire } from "node:module";
import { fileURLToPath, pathToFileURL } from "node:url";
import type { Logger } from "pino";
import { createActor, type Actor } from "../runtime/index.js";
import type { Metrics } from "../connectors/http/metrics.js";
import type { AppConfig } from "./config.js";
import { tsxFlags } from "./tsx-flags.js";
import type { HealthProblem } from "./health.js";
import { parentDeathPrefix } from "../connectors/nats/embedded-server.js";
import type { ChildReplies } from "./child-replies.js";
import type { FromParseChild, JsonMetrics, ToParseChild } from "./parse-process-messages.js";

/**
 * One child process of `reco start` (the parse unit's, or a split start's ingest process): how it
 * is spawned, what its messages do, and how it is asked to stop. bin/parse-process.ts supervises
 * the actor made here and restarts it when the child dies.
 */

/** The parse child exited without being asked to. */
export class ParseProcessExitedError extends Error {
  override readonly name = "ParseProcessExitedError";
  constructor(
    readonly code: number | null,
    readonly signal: string | null,
    what = "parse",
  ) {
    super(`the ${what} process exited with ${signal ?? `code ${code}`}`);
  }
}

/** The parse child said it cannot run (its message names why and the way out). */
export class ParseProcessFatalError extends Error {
  override readonly name = "ParseProcessFatalError";
}

/**
 * Which child: the parse unit (default), or the ingest process of a split `reco start`
 * (bin/ingest-child.ts: every stage, no façade), started at a lower scheduling priority.
 */
export interface ChildKind {
  /** Actor id and health check name ("parse-process"). */
  id: string;
  /** The entry file beside this one, without extension ("parse-child"). */
  entry: string;
  /** Stage label of its restart and error counts, and its name in messages ("parse"). */
  label: string;
  /** Niceness to start it with (`nice -n`); absent: as this process. */
  nice?: number;
  /**
   * IPC serialization: "advanced" (structured clone) carries bytes as bytes (the ingest child's
   * blend changes hold covisit's binary neighbour lists); default "json".
   */
  serialization?: "json" | "advanced";
}

export const PARSE_CHILD: ChildKind = { id: "parse-process", entry: "parse-child", label: "parse" };

/** How startParseProcess (bin/parse-process.ts) runs its child, read by the actor made here. */
export interface ParseProcessOptions {
  cfg: AppConfig;
  natsUrl: string;
  log: Logger;
  /** Restarts and failures of the child count as parse's (`reco_stage_restarts_total`, …). */
  metrics?: Metrics;
  /**
   * Called when the child keeps dying (20 times within a minute) or says it cannot run (a corrupt
   * state store): the app exits non-zero.
   */
  onFatal?: (err: Error) => void;
  /** How long the child may drain on stop before it is SIGKILLed (default 15 s). */
  graceMs?: number;
  /** Which child (default: parse). */
  kind?: ChildKind;
  /** Messages of the child this module does not handle itself (the ingest child's "blend"). */
  onMessage?: (m: FromParseChild) => void;
  /**
   * Called before each child is spawned (the first and every restart), its result sent with the
   * start message: the serving process reads the state store the child is about to open.
   */
  beforeSpawn?: () => Promise<{ replicaBases?: Record<string, string> }>;
  /**
   * The child is spawned once this settles (the first time; a restart after it at once): a
   * restarted app spawns parse once the blend's sources have loaded, so that parse's own start
   * (its modules, its dedupe memory, ~2 s of CPU at 1M events) does not take a core from them.
   */
  spawnAfter?: Promise<unknown>;
}

export interface ParseChildActor extends Actor<never> {
  pid(): number | undefined;
  /** The child's registry as JSON; its last answer if it does not answer within 2 s. */
  metrics(): Promise<JsonMetrics>;
}

/** Node flags that load tsx in the child when this code runs from its TypeScript sources. */
export function childExecArgv(): string[] {
  if (!import.meta.url.endsWith(".ts")) return [];
  const flags = tsxFlags();
  if (flags.some((f) => f.includes("loader"))) return flags;
  // `reco` (bin/reco.mjs) registers tsx in-process, tests run under vitest: load it explicitly.
  const loader = createRequire(import.meta.url).resolve("tsx");
  return ["--import", pathToFileURL(loader).href];
}

export function createParseChildActor(
  o: ParseProcessOptions,
  kind: ChildKind,
  replies: ChildReplies<JsonMetrics>,
  hooks: {
    onPosition: (seq: number, stages?: Record<string, number>) => void;
    onStart: () => void;
    onHealth: (problems: HealthProblem[]) => void;
    onReady: () => void;
  },
): ParseChildActor {
  const ext = import.meta.url.endsWith(".ts") ? "ts" : "js";
  const entry = fileURLToPath(new URL(`./${kind.entry}.${ext}`, import.meta.url));
  const what = `${kind.label} process`;
  let child: ChildProcess | undefined;
  let exited: Promise<void> = Promise.resolve();
  let stopping = false;
  const alive = () => child !== undefined && child.exitCode === null && child.signalCode === null;
  const send = (m: ToParseChild) => {
    if (alive() && child!.connected) child!.send(m, (err) => err && undefined);
  };

  const actor = createActor<never>({
    id: kind.id,
    // A stop while it was starting (the start of the app failed meanwhile) is no error of its own.
    reporter: (err) => {
      if (!/stopped while starting/.test(String(err)))
        o.log.error({ err: String(err) }, `${what} actor`);
    },
    behavior: {
      async start(ctx) {
        hooks.onStart();
        await o.spawnAfter;
        const extra = (await o.beforeSpawn?.()) ?? {};
        if (ctx.signal.aborted) throw new Error("stopped while starting");
        // SIGKILLed by the kernel when this process dies, however it dies. Its IPC channel's
        // 'disconnect' ends it too, but only once its loop gets to that event: busy catching up,
        // it went on for 1.5-9 s after the main process was SIGKILLed, processing, publishing and
        // snapshotting (bench step 6b read "-108,800 events replayed"), and the next start's
        // parse process could not open their LevelDB meanwhile. Same process: setpriv execs node.
        // A lower priority (the ingest child) is set before exec: every thread it has inherits it.
        const [command = process.execPath, ...prefix] = [
          ...(kind.nice ? ["nice", "-n", String(kind.nice)] : []),
          ...parentDeathPrefix("KILL"),
          process.execPath,
        ];
        const c = spawn(command, [...prefix, ...childExecArgv(), entry], {
          stdio: ["ignore", "inherit", "inherit", "ipc"],
          serialization: kind.serialization ?? "json",
        });
        child = c;
        exited = new Promise<void>((resolve) => c.once("exit", () => resolve()));
        return new Promise<void>((resolve, reject) => {
          let started = false;
          c.on("message", (raw: FromParseChild) => {
            if (raw.type === "position") hooks.onPosition(raw.seq, raw.stages);
            else if (raw.type === "health") hooks.onHealth(raw.problems);
            else if (raw.type === "fatal") o.onFatal?.(new ParseProcessFatalError(raw.message));
            else if (raw.type === "metrics") replies.answer(raw.id, raw.metrics);
            else if (raw.type === "ready") {
              started = true;
              hooks.onReady();
              o.log.info({ [`${kind.label}Pid`]: c.pid }, `${what} ready`);
              resolve();
            } else o.onMessage?.(raw);
          });
          const failed = (err: Error) => {
            replies.abandon();
            if (stopping) return;
            if (started) ctx.fail(err);
            else reject(err);
          };
          c.once("exit", (code, signal) =>
            failed(new ParseProcessExitedError(code, signal, kind.label)),
          );
          c.once("error", (err) => failed(err));
          // Stopped while starting: stop() below ends the child.
          ctx.signal.addEventListener("abort", () => reject(new Error("stopped while starting")));
          o.log.debug({ [`${kind.label}Pid`]: c.pid }, `${what} started`);
          send({ type: "start", cfg: o.cfg, natsUrl: o.natsUrl, ...extra });
        });
      },
      receive() {},
      async stop() {
        stopping = true;
        if (!alive()) return;
        const c = child!;
        send({ type: "stop" });
        const t = setTimeout(() => c.kill("SIGKILL"), o.graceMs ?? 15_000);
        await exited;
        clearTimeout(t);
      },
    },
  });
  return Object.assign(actor, {
    pid: () => (alive() ? child?.pid : undefined),
    metrics: () => replies.ask((id) => send({ type: "metrics", id })),
  });
}
