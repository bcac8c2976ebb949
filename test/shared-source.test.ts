import { describe, expect, it } from "vitest";
import { AckPolicy, StorageType, type JetStreamManager } from "nats";
import { startNats, useCleanups, waitFor, sleep } from "./helpers/harness.js";
import { natsHostTransport } from "../connectors/nats/host-transport.js";
import { consumerInfos } from "../connectors/nats/streams.js";
import type { HostTransport, InputSource, SourceMessage } from "../actors/host/index.js";

/**
 * A process's readers of one partition's hops share one consumer (connectors/nats/shared-source.ts):
 * the server delivers each message once, and each reader still gets exactly its own part (from its
 * own start, in order, numbered from 1), while the slowest reader's acks pace delivery.
 */

const GROUP = { durable: "in_parse_0" };

interface Reader {
  seqs: number[];
  deliveries: number[];
  msgs: SourceMessage[];
  source: InputSource;
}

async function reader(
  transport: HostTransport,
  durable: string,
  startSeq: number,
  o: { ack?: boolean; shared?: { durable: string } } = {},
): Promise<Reader> {
  const r = { seqs: [] as number[], deliveries: [] as number[], msgs: [] as SourceMessage[] };
  const source = await transport.openSource({
    stream: "HOPS",
    durable,
    filterSubject: "reco.parse.0",
    startSeq,
    maxAckPending: 4,
    shared: o.shared ?? GROUP,
    callback: (m) => {
      r.seqs.push(m.seq);
      r.deliveries.push(m.info.deliverySequence);
      r.msgs.push(m);
      if (o.ack !== false) m.ack();
    },
  });
  return { ...r, source };
}

const range = (from: number, to: number) =>
  Array.from({ length: to - from + 1 }, (_, x) => from + x);

async function setup(cleanups: ReturnType<typeof useCleanups>, messages: number) {
  const { nc, jsm } = await startNats(cleanups);
  await jsm.streams.add({ name: "HOPS", subjects: ["reco.>"], storage: StorageType.File });
  const js = nc.jetstream();
  const publish = async (n: number) => {
    for (let i = 0; i < n; i++) await js.publish("reco.parse.0", new TextEncoder().encode(`${i}`));
  };
  await publish(messages);
  return { nc, jsm, publish, transport: natsHostTransport(nc) };
}

const names = async (jsm: JetStreamManager) =>
  (await consumerInfos(jsm, "HOPS")).map((c) => c.name).sort();

describe("readers of one partition's hops in a process", () => {
  const cleanups = useCleanups();

  it("share one consumer, each reading from its own start, in order, numbered from 1", async () => {
    const { jsm, publish, transport } = await setup(cleanups, 30);
    const a = await reader(transport, "watermark_0", 1);
    await waitFor(() => a.seqs.length === 30, "the first reader's 30 messages");
    // A reader that starts ahead of what was delivered skips to its start.
    const ahead = await reader(transport, "drift_0", 41);
    // One behind what was delivered: the consumer is placed again at its start, and the first
    // reader does not get again what it had.
    const behind = await reader(transport, "history_0", 11);
    await publish(20);
    await waitFor(
      () => a.seqs.length === 50 && behind.seqs.length === 40 && ahead.seqs.length === 10,
      "every reader's messages",
    );
    await sleep(200);
    expect(a.seqs).toEqual(range(1, 50));
    expect(behind.seqs).toEqual(range(11, 50));
    expect(ahead.seqs).toEqual(range(41, 50));
    // Each reader's own delivery numbering, without gaps (the host checks it for lost ones).
    expect(a.deliveries).toEqual(range(1, 50));
    expect(behind.deliveries).toEqual(range(1, 40));
    expect(ahead.deliveries).toEqual(range(1, 10));
    expect(await names(jsm)).toEqual(["in_parse_0"]);
    // The readers share the delivered bytes (decoded once per process by the host).
    expect(behind.msgs[39]!.data).toBe(a.msgs[49]!.data);
  });

  it("acks a message to the server once every reader has acked it", async () => {
    const { jsm, transport } = await setup(cleanups, 4);
    const fast = await reader(transport, "history_0", 1);
    const slow = await reader(transport, "drift_0", 1, { ack: false });
    await waitFor(() => slow.seqs.length === 4 && fast.seqs.length === 4, "deliveries");
    const floor = async () => (await jsm.consumers.info("HOPS", "in_parse_0")).ack_floor.stream_seq;
    await sleep(300);
    expect(await floor()).toBe(0);
    slow.msgs[1]!.ack(); // cumulative: 1-2
    await sleep(300);
    expect(await floor()).toBe(2);
    slow.msgs[3]!.ack();
    await sleep(300);
    expect(await floor()).toBe(4);
  });

  it("paces delivery by the slowest reader's acks", async () => {
    const { transport } = await setup(cleanups, 40);
    const fast = await reader(transport, "history_0", 1);
    const slow = await reader(transport, "drift_0", 1, { ack: false });
    await sleep(500);
    // At most max_ack_pending (the readers' 4 each) before the slow one acks.
    const got = fast.seqs.length;
    expect(got).toBeGreaterThanOrEqual(4);
    expect(got).toBeLessThanOrEqual(8);
    expect(slow.seqs.length).toBe(got);
    slow.msgs[got - 1]!.ack();
    await waitFor(() => fast.seqs.length >= got + 4, "the next deliveries");
    await sleep(300);
    expect(fast.seqs.length).toBeLessThanOrEqual(2 * got + 4);
    expect(fast.seqs).toEqual(range(1, fast.seqs.length));
  });

  it("keeps the others reading when one closes, and stops the consumer with the last", async () => {
    const { jsm, publish, transport } = await setup(cleanups, 5);
    const a = await reader(transport, "history_0", 1);
    const b = await reader(transport, "drift_0", 1);
    await waitFor(() => a.seqs.length === 5 && b.seqs.length === 5, "first messages");
    await b.source.close();
    expect(await b.source.closed()).toBeUndefined();
    await publish(5);
    await waitFor(() => a.seqs.length === 10, "a's next messages");
    expect(b.seqs).toEqual(range(1, 5));
    await a.source.close();
    // A reader opening afterwards starts a consumer of its own again.
    const c = await reader(transport, "history_0", 3);
    await waitFor(() => c.seqs.length === 8, "c's messages");
    expect(c.seqs).toEqual(range(3, 10));
    expect(await names(jsm)).toEqual(["in_parse_0"]);
  });

  it("ends every reader with an error when the consumer is lost", async () => {
    const { jsm, transport } = await setup(cleanups, 3);
    const a = await reader(transport, "history_0", 1);
    const b = await reader(transport, "drift_0", 1);
    await waitFor(() => a.seqs.length === 3 && b.seqs.length === 3, "first messages");
    await jsm.consumers.delete("HOPS", "in_parse_0");
    const [ea, eb] = await Promise.all([a.source.closed(), b.source.closed()]);
    expect(ea).toBeInstanceOf(Error);
    expect(eb).toBeInstanceOf(Error);
  });

  it("deletes the consumers its readers had of their own", async () => {
    const { jsm, transport } = await setup(cleanups, 3);
    for (const name of ["history_0", "drift_0"])
      await jsm.consumers.add("HOPS", {
        durable_name: name,
        ack_policy: AckPolicy.All,
        filter_subject: "reco.parse.0",
      });
    const a = await reader(transport, "history_0", 1);
    await waitFor(() => a.seqs.length === 3, "first messages");
    const b = await reader(transport, "drift_0", 4);
    await sleep(600);
    expect(await names(jsm)).toEqual(["in_parse_0"]);
    expect(b.seqs).toEqual([]);
  });
});
