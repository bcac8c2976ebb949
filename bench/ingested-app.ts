/**
 * A fresh nats-server and an app process (as `npm start` runs it) that has ingested generated
 * events: what steps 6 and 7 measure.
 */
import { join } from "node:path";
import type { NatsConnection } from "nats";
import { connectNats } from "../connectors/nats/connection.js";
import { freePort } from "../connectors/nats/embedded-server.js";
import { createJetStreamPublisher } from "../connectors/nats/publisher.js";
import { EVENTS_STREAM } from "../connectors/nats/streams.js";
import { epochNow, spawnApp, waitCaughtUp, waitSnapshots, type AppProcess } from "./app-process.js";
import { DEFAULT_GENERATOR, streamMessages } from "./generator.js";
import { fmtInt, sleep, stateDirBytes, withFreshNats } from "./util.js";

/** A fresh nats-server and app process holding the state of generated events (steps 6 and 7). */
export interface IngestedApp {
  readonly natsUrl: string;
  readonly dataDir: string;
  readonly nc: NatsConnection;
  /** The current incarnation (a step may kill it and start another with `spawn()`). */
  app: AppProcess;
  /** Starts another app process on the same ports, data and server. */
  spawn(): AppProcess;
  readonly users: number;
  readonly events: number;
  /** RSS and LevelDB state size of the app idle after start, before any event. */
  readonly rssIdle: number;
  readonly levelIdle: number;
  readonly publishSecs: number;
  /** Publish start → the last position move of the ingest. */
  readonly ingestSecs: number;
  /** Lag gauges that stayed above 0 although nothing moved ("" if none). */
  readonly lagGaugeStuck: string;
  /** Stream sequence of the last event. */
  readonly lastSeq: number;
}

export interface IngestOptions {
  /** Active users: events go to user k mod `users` ("cycle"), one each per round. */
  users: number;
  /** Events per user. */
  perUser: number;
  partitions: number;
  /** Give up waiting for the ingest after this long per 200k events (at least this long). */
  ingestTimeoutMs: number;
  publishWindow: number;
  log: (msg: string) => void;
  label: string;
}

/**
 * Runs `fn` on a fresh server and app (as `npm start` runs it) that has ingested
 * `users × perUser` generated events (every user the same number, 2 h of event time ending now),
 * caught up, and written two more snapshots of every stage. Stops the app and the server after.
 */
export async function withIngestedApp<T>(
  o: IngestOptions,
  fn: (s: IngestedApp) => Promise<T>,
): Promise<T> {
  return withFreshNats(o.label, async (nats, dir) => {
    const dataDir = join(dir, "app");
    const grpcPort = await freePort();
    const metricsPort = await freePort();
    const spawn = () =>
      spawnApp({ natsUrl: nats.url, dataDir, grpcPort, metricsPort, partitions: o.partitions });
    const nc = await connectNats({ servers: nats.url, name: "reco-bench" });
    let current = spawn();
    try {
      await current.ready();
      await sleep(2000);
      const rssIdle = await current.rss();
      const levelIdle = await stateDirBytes(dataDir);
      const events = o.users * o.perUser;
      o.log(
        `${o.label}: publishing ${fmtInt(events)} events of ${fmtInt(o.users)} users to the app (own process)`,
      );
      const pub = createJetStreamPublisher(nc, { window: o.publishWindow });
      const t0 = epochNow();
      await pub.publishMany(
        streamMessages(events, {
          ...DEFAULT_GENERATOR,
          users: o.users,
          userDist: "cycle",
          start: Date.now() - DEFAULT_GENERATOR.spanMs,
        }),
      );
      await pub.close();
      const publishSecs = (epochNow() - t0) / 1000;
      const lastSeq = (await (await nc.jetstreamManager()).streams.info(EVENTS_STREAM)).state
        .last_seq;
      o.log(
        `${o.label}: published in ${publishSecs.toFixed(1)} s; waiting for the app to catch up`,
      );
      const caught = await waitCaughtUp(current, lastSeq, {
        timeoutMs: o.ingestTimeoutMs * Math.max(1, events / 200_000),
      });
      if (caught.timedOut)
        throw new Error(`${events} events not ingested in time (parse at ${caught.parsed})`);
      await waitSnapshots(current, 2);
      const s: IngestedApp = {
        natsUrl: nats.url,
        dataDir,
        nc,
        get app() {
          return current;
        },
        set app(a: AppProcess) {
          current = a;
        },
        spawn,
        users: o.users,
        events,
        rssIdle,
        levelIdle,
        publishSecs,
        ingestSecs: (caught.doneAt - t0) / 1000,
        lagGaugeStuck: caught.lagGaugeStuck,
        lastSeq,
      };
      return await fn(s);
    } finally {
      await nc.close().catch(() => undefined);
      await current.stop();
    }
  });
}
