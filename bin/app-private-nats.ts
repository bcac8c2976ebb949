import { join } from "node:path";
import type { Logger } from "pino";
import type { EmbeddedNats } from "../connectors/nats/embedded-server.js";
import { freeBytes, keepPrivateNats, NATS_MIN_FREE_BYTES, type NatsKeeper } from "./nats-keeper.js";
import type { AppConfig } from "./config.js";
import { publisherFile, startPrivateNats } from "./private-nats.js";
import type { NatsWatch } from "./health.js";
import { portTaken } from "./app-ports.js";

/** The private nats-server, restarted when the NATS watch says it has stopped answering. */
export function keepNats(
  priv: { server: EmbeddedNats; startAgain: () => Promise<EmbeddedNats> },
  nats: NatsWatch,
  cfg: AppConfig,
  log: Logger,
): NatsKeeper {
  return keepPrivateNats({
    first: priv.server,
    start: priv.startAgain,
    notAnsweringSince: () => {
      const problem = nats
        .check(Date.now())
        .find((x) => x.check === "nats" || x.check === "jetstream");
      return problem && { since: problem.since, why: problem.reason };
    },
    restartAfterMs: cfg.natsRestartAfterMs,
    hasRoom: () => freeBytes(join(cfg.dataDir, "nats")) >= NATS_MIN_FREE_BYTES,
    log,
  });
}

/**
 * The private nats-server (NATS_URL unset), with credentials kept in DATA_DIR; publishers get
 * theirs from nats-publisher.json. It dies with this process.
 */
export async function privateNats(
  cfg: AppConfig,
  log: Logger,
): Promise<{
  server: EmbeddedNats;
  engineUrl: string;
  /** Starts it again, on the same port, store and monitoring port. */
  startAgain: () => Promise<EmbeddedNats>;
}> {
  let monitorPort = cfg.natsMonitorPort;
  const priv = await startPrivateNats({
    dataDir: cfg.dataDir,
    port: cfg.natsPort,
    monitorPort,
  })
    .catch((err: unknown) => {
      // Monitoring is an aid: a busy port (a second instance, another program on 8222) must
      // not stop the engine. Started again without it, and said so.
      if (!monitorPort || !/monitor port/.test(String((err as Error)?.message))) throw err;
      log.warn(
        { monitorPort },
        "nats-server monitoring port busy: running without it (set NATS_MONITOR_PORT)",
      );
      monitorPort = 0;
      return startPrivateNats({ dataDir: cfg.dataDir, port: cfg.natsPort, monitorPort: 0 });
    })
    .catch(portTaken("NATS_PORT", "127.0.0.1", cfg.natsPort));
  log.info(
    {
      url: priv.server.url,
      publisher: publisherFile(cfg.dataDir),
      natsPid: priv.server.pid,
      ...(monitorPort ? { monitor: `http://127.0.0.1:${monitorPort}` } : {}),
    },
    "started private nats-server",
  );
  const startAgain = async () =>
    (await startPrivateNats({ dataDir: cfg.dataDir, port: priv.server.port, monitorPort })).server;
  return { ...priv, startAgain };
}
