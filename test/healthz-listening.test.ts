import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { mkdtemp, rm } from "node:fs/promises";
import { connect as tcpConnect } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { setupNats, type TestNats } from "./helpers/nats.js";
import { killGroup, spawnReco } from "./helpers/app-process.js";

/**
 * /healthz is what a load balancer's readiness probe asks: its first 200 must find every
 * facade of `reco start` listening, the JSON API and gRPC, in both layouts (SERVE_PROCESS=1,
 * serving in a process of its own, and 0). Real parts: a nats-server, `reco start` as a process,
 * /healthz polled every 5 ms from its first answer, the JSON API and gRPC asked at once.
 */
const cleanups: (() => Promise<unknown>)[] = [];
afterAll(async () => {
  for (const c of cleanups.reverse()) await c().catch(() => undefined);
});

/** Whether a TCP connection to the port is accepted now. */
const accepts = (port: number) =>
  new Promise<boolean>((resolve) => {
    const s = tcpConnect({ host: "127.0.0.1", port });
    s.once("connect", () => {
      s.destroy();
      resolve(true);
    });
    s.once("error", () => resolve(false));
  });

describe("/healthz says ready only once the JSON API and gRPC listen", () => {
  let nats: TestNats;
  beforeAll(async () => {
    nats = await setupNats();
    cleanups.push(() => nats.cleanup());
  });
  it.each(["1", "0"])(
    "SERVE_PROCESS=%s",
    async (serveProcess) => {
      const dataDir = await mkdtemp(join(tmpdir(), "reco-healthz-"));
      cleanups.push(() => rm(dataDir, { recursive: true, force: true }));
      let atFirstReady: { web: number | string; grpc: boolean } | undefined;
      const app = await spawnReco({
        env: {
          NATS_URL: nats.url,
          DATA_DIR: dataDir,
          PARTITIONS: "2",
          SERVE_PROCESS: serveProcess,
          LOG_LEVEL: "warn",
        },
        webPort: true,
        detached: true,
        spawned: (a) => cleanups.push(() => killGroup(a)),
        // The first 200 of /healthz: what answers at that moment.
        ready: async (a) => {
          const [web, grpc] = await Promise.all([
            fetch(`http://127.0.0.1:${a.webPort}/openapi.json`).then(
              (r) => r.status,
              (err: unknown) => String((err as Error).cause ?? err),
            ),
            accepts(a.grpcPort),
          ]);
          atFirstReady ??= { web, grpc };
          return true;
        },
        timeoutMs: 90_000,
        pollMs: 5,
      });
      expect(atFirstReady, app.output()).toEqual({ web: 200, grpc: true });
      await killGroup(app);
    },
    120_000,
  );
});
