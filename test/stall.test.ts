import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { connect, type NatsConnection } from "nats";
import { setupNats, type TestNats } from "./helpers/nats.js";
import { watchForStall } from "../connectors/nats/stall.js";
import { sleep } from "./helpers/harness.js";

describe("watchForStall", () => {
  let nats: TestNats;
  let nc: NatsConnection;
  beforeAll(async () => {
    nats = await setupNats();
    nc = await connect({ servers: nats.url });
    const jsm = await nc.jetstreamManager();
    await jsm.streams.add({ name: "ST", subjects: ["st.>"] });
    const js = nc.jetstream();
    for (let i = 0; i < 3; i++) await js.publish("st.x", "x");
  });
  afterAll(async () => {
    await nc.close();
    await nats.cleanup();
  });

  const watch = (lastSeen: () => number) => {
    const stalls: string[] = [];
    const stop = watchForStall(nc, "ST", lastSeen, (e) => stalls.push(e.message), {
      everyMs: 50,
      graceMs: 300,
    });
    return { stalls, stop };
  };

  it("reports a reader that stands still behind the stream", async () => {
    const { stalls, stop } = watch(() => 1);
    await sleep(800);
    stop();
    expect(stalls).toEqual([expect.stringMatching(/reader of ST stalled at 1 .*last 3/)]);
  });

  it("leaves alone a reader that has read everything (idle) or keeps moving", async () => {
    const idle = watch(() => 3);
    let seen = 0;
    const moving = watch(() => ++seen); // behind, but moving at every check
    await sleep(800);
    idle.stop();
    moving.stop();
    expect(idle.stalls).toEqual([]);
    expect(moving.stalls).toEqual([]);
  });
});
