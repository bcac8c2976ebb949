import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { AckPolicy, connect, type NatsConnection } from "nats";
import { consumerProbe } from "../connectors/nats/source.js";
import type { ConsumerView } from "../actors/stages/index.js";
import { setupNats, type TestNats } from "./helpers/nats.js";

/*
 * Parse decides on idle markers from the server's view of its consumer (pending count, delivered
 * and acknowledged sequences, a waiting pull): the probe that reads it, against nats-server.
 */

const enc = new TextEncoder();

describe("the consumer probe against nats-server", () => {
  let nats: TestNats;
  let nc: NatsConnection;
  beforeAll(async () => {
    nats = await setupNats();
    nc = await connect({ servers: nats.url });
  });
  afterAll(async () => {
    await nc?.close();
    await nats?.cleanup();
  });

  it("reads pending, delivered, acknowledged and waiting pulls as parse's host leaves them", async () => {
    const jsm = await nc.jetstreamManager();
    await jsm.streams.add({ name: "T", subjects: ["t.>"] });
    await jsm.consumers.add("T", { durable_name: "c_0", ack_policy: AckPolicy.All });
    const js = nc.jetstream();
    for (let k = 0; k < 5; k++) await js.publish("t.x", enc.encode(String(k)));
    const probe = consumerProbe(jsm, "T", "c_0");
    // Backlogged: the server holds all five.
    expect(await probe()).toEqual({ pending: 5, delivered: 0, ackFloor: 0, waiting: 0 });
    // Delivered, not yet acknowledged (the host acks at its snapshots), a pull waiting for more.
    const consumer = await js.consumers.get("T", "c_0");
    const iter = await consumer.consume({ max_messages: 512 });
    const views: ConsumerView[] = [];
    let n = 0;
    for await (const m of iter) {
      if (++n < 5) continue;
      await new Promise((r) => setTimeout(r, 100));
      views.push(await probe());
      m.ack();
      await nc.flush();
      views.push(await probe());
      // Closed inside the loop, which then ends by itself (see NATS-NOTES.md).
      void iter.close();
    }
    expect(views).toEqual([
      { pending: 0, delivered: 5, ackFloor: 0, waiting: 1 },
      { pending: 0, delivered: 5, ackFloor: 5, waiting: 1 },
    ]);
  });
});
