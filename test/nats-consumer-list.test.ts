import { describe, expect, it } from "vitest";
import type { ConsumerInfo, JetStreamManager } from "nats";
import { consumerInfos } from "../connectors/nats/streams.js";

/**
 * nats-server lists a consumer that closes while it builds the list as null: `reco replay`'s
 * wait for the engine read `num_pending` of it and reported NATS as not answering.
 */
describe("listing a stream's consumers", () => {
  it("leaves out the consumers the server lists as null", async () => {
    const a = { name: "history_0", num_pending: 3 } as ConsumerInfo;
    const b = { name: "covisit_1", num_pending: 0 } as ConsumerInfo;
    const asked: string[] = [];
    const jsm = {
      consumers: {
        list: (stream: string) => {
          asked.push(stream);
          // The client's lister: its pages, one consumer at a time.
          return (async function* () {
            yield* [a, null, b];
          })();
        },
      },
    } as unknown as JetStreamManager;
    const got = await consumerInfos(jsm, "RECO_HOPS");
    expect(got).toEqual([a, b]);
    expect(asked).toEqual(["RECO_HOPS"]);
    expect(got.some((c) => c.num_pending > 0)).toBe(true);
  });
});
