/** Step 1, the baselines: raw JetStream publish (fast publisher) and raw consume (no acks). */
import { AckPolicy, DeliverPolicy } from "nats";
import { ensureEventsStream, EVENTS_STREAM } from "../../connectors/nats/streams.js";
import type { OutgoingMessage } from "../../connectors/nats/publisher.js";
import { connect, publishAll } from "../in-process.js";
import { PUB_WINDOW } from "../options.js";
import type { Report } from "../report.js";
import { fmtInt, withFreshNats } from "../util.js";

export async function stepRaw(report: Report, msgs: OutgoingMessage[]): Promise<number> {
  return withFreshNats("raw", async (nats) => {
    const nc = await connect(nats);
    const jsm = await nc.jetstreamManager();
    await ensureEventsStream(jsm);
    report.log(`1. raw publish of ${fmtInt(msgs.length)} events (window ${PUB_WINDOW})`);
    const pubRate = await publishAll(nc, msgs);
    report.row({
      step: "1",
      figure: "raw JetStream publish (fast publisher)",
      value: `${fmtInt(pubRate)} msgs/s`,
    });

    report.log("1. raw consume (consume(), AckPolicy.None, batch 1024)");
    await jsm.consumers.add(EVENTS_STREAM, {
      durable_name: "bench_raw",
      ack_policy: AckPolicy.None,
      deliver_policy: DeliverPolicy.All,
    });
    const consumer = await nc.jetstream().consumers.get(EVENTS_STREAM, "bench_raw");
    const t0 = performance.now();
    const iter = await consumer.consume({ max_messages: 1024 });
    let n = 0;
    let bytes = 0;
    // Per NATS-NOTES: close inside the loop and let it end by itself (no `break`).
    for await (const m of iter) {
      bytes += m.data.length;
      if (++n >= msgs.length) void iter.close();
    }
    const consumeRate = n / ((performance.now() - t0) / 1000);
    report.row({
      step: "1",
      figure: "raw JetStream consume (no acks)",
      value: `${fmtInt(consumeRate)} msgs/s`,
    });
    report.note(
      `Events are ${Math.round(bytes / n)} bytes of JSON on average (Zipf users/items, ` +
        `view/click/cart/purchase 70/18/7/5%, ±60 s disorder).`,
    );
    await nc.close();
    return consumeRate;
  });
}
