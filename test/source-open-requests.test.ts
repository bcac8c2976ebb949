import { describe, expect, it } from "vitest";
import { connect } from "nats";
import { setupNats } from "./helpers/nats.js";
import { openDurableSource } from "../connectors/nats/source.js";
import { sleep } from "./helpers/harness.js";

/**
 * Every stage instance opens its durable source at start, ~45 of them in a
 * restart, each before the instance runs (and answers). Opening asks the server only what it
 * must: delete the old consumer, add it at the snapshot's sequence, look it up; it no longer asks
 * for the account's JetStream info first (jetstreamManager's API check, one more round trip).
 */
describe("opening a durable source", () => {
  it("makes only the consumer's delete, add and lookup requests", async () => {
    const nats = await setupNats();
    const nc = await connect({ servers: nats.url });
    const watcher = await connect({ servers: nats.url });
    try {
      const jsm = await nc.jetstreamManager();
      await jsm.streams.add({ name: "SRC", subjects: ["src.>"] });
      const asked: string[] = [];
      const sub = watcher.subscribe("$JS.API.>", { callback: (_e, m) => asked.push(m.subject) });
      await watcher.flush();
      const messages = await openDurableSource(nc, {
        stream: "SRC",
        durable: "d",
        filterSubject: "src.>",
        startSeq: 5,
        callback: () => undefined,
      });
      await nc.flush();
      await sleep(100);
      sub.unsubscribe();
      const api = asked.filter((s) => !s.startsWith("$JS.API.CONSUMER.MSG.NEXT"));
      expect(api).not.toContain("$JS.API.INFO");
      expect(api.map((s) => s.split(".").slice(2, 4).join("."))).toEqual([
        "CONSUMER.DELETE",
        expect.stringMatching(/^CONSUMER\.(DURABLE|CREATE)$/),
        "CONSUMER.INFO",
      ]);
      await messages.close();
    } finally {
      await watcher.close();
      await nc.close();
      await nats.cleanup();
    }
  }, 30_000);
});
