import { afterAll, describe, expect, it } from "vitest";
import { connect } from "nats";
import { setupNats, type TestNats } from "./helpers/nats.js";
import { startEmbeddedNats, NatsServerMissingError } from "../connectors/nats/embedded-server.js";

describe("embedded nats-server", () => {
  let t: TestNats | undefined;
  afterAll(async () => t?.cleanup());

  it("starts with JetStream enabled on a free port", async () => {
    t = await setupNats();
    const nc = await connect({ servers: t.url });
    const info = await (await nc.jetstreamManager()).getAccountInfo();
    expect(info.limits).toBeDefined();
    await nc.close();
  });

  it("names the install command when the binary is missing", async () => {
    await expect(
      startEmbeddedNats({ port: 0, storeDir: "/tmp/reco-missing", binary: "no-such-nats-server" }),
    ).rejects.toThrow(NatsServerMissingError);
    await expect(
      startEmbeddedNats({ port: 0, storeDir: "/tmp/reco-missing", binary: "no-such-nats-server" }),
    ).rejects.toThrow(/apt-get install -y nats-server/);
  });
});
