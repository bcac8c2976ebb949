import { Command } from "commander";
import { setLogger } from "@grpc/grpc-js";
import { ConfigError, SETTINGS, flagOf, loadConfig, redactConfig } from "./config.js";
import { startApp, startGatewayApp } from "./app.js";
import { startServingApp } from "./serve-app.js";
import { appPidForFaults } from "./test-faults.js";
import { applyHeapSettings } from "./heap-growth.js";
import { writeRunFile } from "./run-file.js";
import { createLogger } from "./log.js";
import { BUILD_INFO } from "../connectors/http/metrics.js";
import { loadRoleConfig, requireNatsUrl, ROLE_SETTINGS, type RoleConfig } from "./role-config.js";

export type Role = "start" | "worker" | "gateway";

const DESCRIPTIONS: Record<Role, string> = {
  start:
    "run the whole pipeline (SERVE_PROCESS=1: serving here, the stages in a child at lower priority)",
  worker: "run the stage actors of the partitions this worker's leases grant (needs NATS_URL)",
  gateway: "serve the gRPC façade from a replica of every partition (needs NATS_URL)",
};

/**
 * `npm start` / `reco start`: everything in one process; `reco worker` and `reco gateway`: the
 * split roles for a cluster. Settings come from flags (`--grpc-port 50052`) or the environment
 * (`GRPC_PORT=50052`); flags win.
 */
export async function main(argv: string[], role: Role = "start"): Promise<void> {
  const program = new Command(`reco ${role}`).description(DESCRIPTIONS[role]);
  for (const s of Object.values(SETTINGS)) {
    const d = "default" in s ? ` (default ${s.default})` : "";
    program.option(`${flagOf(s.env)} <value>`, `${s.help} [${s.env}]${d}`);
  }
  for (const [env, help] of Object.entries(ROLE_SETTINGS))
    if (role !== "start" || env === "STOP_TIMEOUT_MS")
      program.option(`${flagOf(env)} <value>`, `${help} [${env}]`);
  // `npm start --grpc-port 50052` gives npm the flag and us only "50052" (too many arguments).
  program.showHelpAfterError(
    "(npm passes flags on only after `--`: `npm start -- --grpc-port 50052`, " +
      "or run `npx reco start --grpc-port 50052`)",
  );
  program.parse(argv, { from: "user" });
  const opts = program.opts<Record<string, string>>();
  const flags: Record<string, string> = {};
  const envNames = [...Object.values(SETTINGS).map((s) => s.env), ...Object.keys(ROLE_SETTINGS)];
  for (const env of envNames) {
    const key = flagOf(env)
      .slice(2)
      .replace(/-([a-z0-9])/g, (_, c: string) => c.toUpperCase());
    if (opts[key] !== undefined) flags[env] = opts[key];
  }

  let cfg;
  let roleConfig: RoleConfig;
  try {
    cfg = loadConfig(process.env, flags);
    roleConfig = loadRoleConfig({ ...process.env, ...flags });
    if (role !== "start") requireNatsUrl(cfg, role);
  } catch (err) {
    if (err instanceof ConfigError) {
      console.error(`configuration error: ${err.message}`);
      process.exit(2);
    }
    throw err;
  }
  appPidForFaults(process.env);
  const log = createLogger(cfg.logLevel);
  // grpc-js's own lines in our log's format; a bind failure is said once, by the start.
  setLogger({
    error: (...args: unknown[]) => {
      const text = args
        .map(String)
        .join(" ")
        .replace(/^[EIDW] /, "");
      if (!/^No address added/.test(text)) log.warn({ from: "grpc-js" }, text);
    },
  });
  log.debug({ config: redactConfig(cfg) }, "configuration");
  // Escalation means a stage keeps crashing: exit non-zero and let the outer supervisor
  // (systemd, Kubernetes) restart the process; the state on disk makes that safe.
  // One line that says why (a corrupt state store names its path and the way out).
  const onFatal = (err: Error) => {
    log.fatal({ err: err.message }, `exiting: ${err.message}`);
    process.exit(70);
  };
  const failed = (err: unknown): never => {
    const why = err instanceof Error ? err.message : String(err);
    log.fatal(`failed to start: ${why}`);
    process.exit(1);
  };
  // SERVE_PROCESS=1: serving in this process, the stages in a child at a lower priority.
  const app =
    role === "gateway"
      ? await startGatewayApp(cfg, roleConfig, log).catch(failed)
      : role === "start" && cfg.serveProcess
        ? await startServingApp(cfg, roleConfig, log, { onFatal }).catch(failed)
        : await startApp(cfg, log, { onFatal, role, roleConfig }).catch(failed);
  // Once started: a restart's load grows the heap from nothing to the whole state, and at a
  // fixed small growth that would be a full GC at every quarter more (seconds at 1M users). And
  // what a burst of ingest left in the heap goes once the process is quiet after it.
  applyHeapSettings(cfg, (ms, freed) =>
    log.info(
      { ms: Math.round(ms), freedMiB: Math.round(freed / 1048576) },
      "quiet after work: full GC",
    ),
  );
  const where =
    role === "worker"
      ? `worker ${roleConfig.workerId}`
      : `console on ${app.webUrl}, gRPC on :${app.grpcPort}`;
  log.info(
    {
      role,
      grpc: app.grpcPort,
      metrics: app.metricsPort,
      ...(app.webPort > 0 ? { web: app.webPort } : {}),
      partitions: cfg.pipeline.partitions,
      ...(role === "worker" ? { worker: roleConfig.workerId } : {}),
    },
    `reco-stream ready: ${where}, metrics on http://localhost:${app.metricsPort}/metrics`,
  );
  // The CLI finds this engine (its ports) through DATA_DIR/run.json. Without it the engine still
  // runs; the CLI then needs GRPC_ADDR and friends, which the warning says.
  let removeRunFile: () => void = () => undefined;
  if (role !== "worker") {
    try {
      removeRunFile = writeRunFile({
        pid: process.pid,
        version: BUILD_INFO.version,
        startedAt: new Date().toISOString(),
        dataDir: cfg.dataDir,
        grpc: `127.0.0.1:${app.grpcPort}`,
        web: app.webUrl,
        metrics: `http://127.0.0.1:${app.metricsPort}/`,
        nats: ("natsUrl" in app ? String(app.natsUrl) : (cfg.natsUrl ?? "")).replace(
          /\/\/[^/@,\s]*@/g,
          "//",
        ),
      });
    } catch (err) {
      log.warn(
        `cannot write ${cfg.dataDir}/run.json (${(err as Error).message}): the CLI will not find this engine by DATA_DIR; give it GRPC_ADDR`,
      );
    }
  }
  process.once("exit", removeRunFile);
  let stoppingSince = 0;
  const shutdown = (signal: string) => {
    // A Ctrl-C reaches us twice (from the terminal and relayed by tsx): only a signal that comes
    // well after the first one means "stop waiting".
    if (stoppingSince > 0) {
      if (Date.now() - stoppingSince < 2000) return;
      log.warn("second signal: exiting now");
      process.exit(130);
    }
    stoppingSince = Date.now();
    log.info({ signal }, "draining");
    // Draining talks to NATS (final snapshots, lease hand-over). If NATS is gone it can wait
    // forever: give up after STOP_TIMEOUT_MS; the snapshots on disk make a hard exit safe.
    const stopTimeout = roleConfig.stopTimeoutMs;
    setTimeout(() => {
      log.warn({ ms: stopTimeout }, "drain took too long: exiting without it");
      process.exit(1);
    }, stopTimeout).unref();
    app
      .stop()
      .then(() => {
        log.info("stopped");
        process.exit(0);
      })
      .catch((err: unknown) => {
        log.error({ err: String(err) }, "stop failed");
        process.exit(1);
      });
  };
  process.on("SIGINT", () => shutdown("SIGINT"));
  process.on("SIGTERM", () => shutdown("SIGTERM"));
}

if (import.meta.url === `file://${process.argv[1]}`) {
  await main(process.argv.slice(2));
}
