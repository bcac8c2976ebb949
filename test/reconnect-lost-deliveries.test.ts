import { describe, expect, it } from "vitest";
import { createServer, connect as tcpConnect, type Server, type Socket } from "node:net";
import { connect, StorageType } from "nats";
import { startNats, tempStateDb, useCleanups, waitFor } from "./helpers/harness.js";
import { probeStage } from "./helpers/probe-stage.js";

/**
 * Deliveries the server sent but the client never read are lost with the connection (bench step
 * 2: a slow consumer cut by the server; a dying node). The input finds such a gap when a later
 * delivery arrives; when none comes (every delivery in flight lost: hop inputs keep only four,
 * or the last ones of a burst), it waited for ack_wait (60 s) to redeliver, the stage standing
 * still meanwhile. After a reconnect the input now compares the server's delivered count with
 * what it received, and fails at once on a gap (its supervisor restarts it from its snapshot).
 *
 * The connection runs through a TCP proxy that can hold what the server sends and then cut the
 * connection, dropping it: the two deliveries it holds are lost in flight.
 */

interface Proxy {
  port: number;
  /** Server-to-client bytes are kept from now on, not forwarded. */
  hold(): void;
  /** Closes every proxied connection, dropping what was held; new connections forward again. */
  cut(): void;
  close(): Promise<void>;
}

async function startProxy(target: number): Promise<Proxy> {
  let holding = false;
  const pairs: [Socket, Socket][] = [];
  const server: Server = createServer((client) => {
    const upstream = tcpConnect(target, "127.0.0.1");
    pairs.push([client, upstream]);
    client.on("data", (d) => upstream.write(d));
    upstream.on("data", (d) => {
      if (!holding) client.write(d);
    });
    const end = () => {
      client.destroy();
      upstream.destroy();
    };
    client.on("error", end).on("close", end);
    upstream.on("error", end).on("close", end);
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const addr = server.address();
  return {
    port: typeof addr === "object" && addr ? addr.port : 0,
    hold: () => void (holding = true),
    cut() {
      for (const [a, b] of pairs.splice(0)) {
        a.destroy();
        b.destroy();
      }
      holding = false;
    },
    close: () =>
      new Promise<void>((resolve) => {
        for (const [a, b] of pairs.splice(0)) {
          a.destroy();
          b.destroy();
        }
        server.close(() => resolve());
      }),
  };
}

describe("deliveries lost with the connection", () => {
  const cleanups = useCleanups();

  it("fail the input right after the reconnect, not at ack_wait", async () => {
    const { nats, nc, jsm } = await startNats(cleanups);
    await jsm.streams.add({ name: "IN", subjects: ["in.>"], storage: StorageType.File });
    const proxy = await startProxy(nats.server.port);
    cleanups.add(() => proxy.close());
    const appNc = await connect({
      servers: `nats://127.0.0.1:${proxy.port}`,
      reconnectTimeWait: 100,
      maxReconnectAttempts: -1,
    });
    cleanups.add(() => appNc.close());
    const db = await tempStateDb(cleanups, "reco-reconnect-lost-");
    const seen: number[] = [];
    const inst = probeStage(appNc, db, (m) => void seen.push(m.seq));
    cleanups.add(() => inst.actor.stop());
    let failure: string | undefined;
    inst.actor.events$.subscribe((e) => {
      if (e.type === "error") failure = String(e.error);
    });
    await inst.actor.start();
    const js = nc.jetstream();
    for (let i = 0; i < 3; i++) await js.publish("in.x", `m${i}`);
    await waitFor(() => seen.length === 3, "the first three");

    // The last two are sent by the server but never reach the client.
    proxy.hold();
    for (let i = 3; i < 5; i++) await js.publish("in.x", `m${i}`);
    const deadline = Date.now() + 10_000;
    while ((await jsm.consumers.info("IN", "probe_0")).delivered.consumer_seq < 5) {
      if (Date.now() > deadline) throw new Error("the server did not deliver the last two");
      await new Promise((r) => setTimeout(r, 50));
    }
    proxy.cut();

    const t0 = Date.now();
    await waitFor(() => failure !== undefined, "the input to fail on the lost deliveries", 15_000);
    expect(Date.now() - t0).toBeLessThan(15_000);
    expect(failure).toMatch(/deliveries 4-5 lost with the connection \(received 3\)/);
    expect(seen).toEqual([1, 2, 3]);
  }, 40_000);
});
