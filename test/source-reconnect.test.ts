import { describe, expect, it } from "vitest";
import { spawn } from "node:child_process";
import { connect as tcpConnect } from "node:net";
import { connect } from "nats";
import { setupNats } from "./helpers/nats.js";
import { openDurableSource } from "../connectors/nats/source.js";
import { sleep } from "./helpers/harness.js";

/** Resolves once something accepts TCP connections on the port. */
async function listening(port: number) {
  for (;;) {
    const ok = await new Promise<boolean>((resolve) => {
      const s = tcpConnect(port, "127.0.0.1", () => (s.end(), resolve(true)));
      s.on("error", () => resolve(false));
    });
    if (ok) return;
    await sleep(50);
  }
}

describe("a durable source after a reconnect", () => {
  // Regression: a consumer whose server died (a one-replica consumer on a killed cluster node)
  // left its stage waiting forever: the client stops its heartbeat watch while disconnected and
  // restarts it only once consumer.info() answers, retrying silently until then.
  it("ends with an error when its consumer cannot be reached after the reconnect", async () => {
    const nats = await setupNats();
    const port = nats.server.port;
    const nc = await connect({
      servers: nats.url,
      reconnectTimeWait: 100,
      maxReconnectAttempts: -1,
    });
    const jsm = await nc.jetstreamManager();
    await jsm.streams.add({ name: "SRC", subjects: ["src.>"] });
    const messages = await openDurableSource(nc, {
      stream: "SRC",
      durable: "d",
      filterSubject: "src.>",
      startSeq: 0,
      callback: () => undefined,
    });
    // The same port comes back without JetStream: the consumer exists nowhere the client can reach.
    await nats.server.stop();
    const plain = spawn("nats-server", ["-a", "127.0.0.1", "-p", String(port)], {
      stdio: "ignore",
    });
    try {
      await listening(port);
      const closed = await Promise.race([
        messages.closed(),
        sleep(25_000).then(() => "still open"),
      ]);
      expect(String(closed)).toMatch(/consumer d unreachable after a reconnect/);
    } finally {
      plain.kill("SIGKILL");
      await nc.close().catch(() => undefined);
      await nats.cleanup();
    }
  }, 40_000);
});
