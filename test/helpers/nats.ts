import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { KvEntry, NatsConnection } from "nats";
import { startEmbeddedNats, type EmbeddedNats } from "../../connectors/nats/embedded-server.js";
import { liveKeys } from "../../connectors/nats/topology.js";

export interface TestNats {
  server: EmbeddedNats;
  url: string;
  storeDir: string;
  /** Stops the server and removes its store. */
  cleanup(): Promise<void>;
  /** Restarts the server on the same port with the same store (for outage tests), down for `downMs`. */
  restart(downMs?: number): Promise<void>;
}

/** Spawns `nats-server -js` on a free loopback port with a temporary store. */
export async function setupNats(): Promise<TestNats> {
  const storeDir = await mkdtemp(join(tmpdir(), "reco-nats-"));
  let server = await startEmbeddedNats({ port: 0, storeDir });
  const t: TestNats = {
    get server() {
      return server;
    },
    url: server.url,
    storeDir,
    async cleanup() {
      await server.stop();
      await rm(storeDir, { recursive: true, force: true });
    },
    async restart(downMs = 0) {
      await server.stop();
      if (downMs > 0) await new Promise((r) => setTimeout(r, downMs));
      server = await startEmbeddedNats({ port: server.port, storeDir });
    },
  };
  return t;
}

/**
 * The entries of a KV bucket that hold a value, by key in key order. Read from the stream's
 * subject list and direct gets, as the engine reads its own buckets (liveKeys), with no
 * consumer: `kv.keys()` reads an ordered consumer until nothing is pending, on a bucket the
 * stages keep writing to.
 */
export async function kvEntries(nc: NatsConnection, bucket: string): Promise<Map<string, KvEntry>> {
  const kv = await nc.jetstream().views.kv(bucket);
  return liveKeys(await nc.jetstreamManager(), kv, bucket);
}
