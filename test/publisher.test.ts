import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { Events, StorageType, type JetStreamManager, type NatsConnection } from "nats";
import { startEmbeddedNats } from "../connectors/nats/embedded-server.js";
import { connectNats } from "../connectors/nats/connection.js";
import {
  createJetStreamPublisher,
  NoStreamError,
  PublisherClosedError,
  PublishTimeoutError,
  type PubAckInfo,
} from "../connectors/nats/publisher.js";
import { setupNats, type TestNats } from "./helpers/nats.js";

const enc = new TextEncoder();
const dec = new TextDecoder();

describe("JetStream publisher", () => {
  let nats: TestNats;
  let nc: NatsConnection;
  let jsm: JetStreamManager;

  beforeAll(async () => {
    nats = await setupNats();
    nc = await connectNats({ servers: nats.url, name: "publisher-test" });
    jsm = await nc.jetstreamManager();
  });

  afterAll(async () => {
    await nc?.close();
    await nats?.cleanup();
  });

  it("stores 20k messages in publish order", async () => {
    await jsm.streams.add({ name: "ORDER", subjects: ["order.>"], storage: StorageType.File });
    const pub = createJetStreamPublisher(nc, { window: 256 });
    const n = 20_000;
    const acks: Promise<PubAckInfo>[] = [];
    for (let i = 0; i < n; i++) {
      if (pub.pending() >= 256) await pub.ready();
      acks.push(pub.publish(`order.${i % 4}`, enc.encode(JSON.stringify({ i }))));
    }
    await pub.flush();
    expect(pub.pending()).toBe(0);
    const seqs = (await Promise.all(acks)).map((a) => a.seq);
    expect(seqs).toEqual(Array.from({ length: n }, (_, i) => i + 1));

    const info = await jsm.streams.info("ORDER");
    expect(info.state.messages).toBe(n);
    expect(info.state.last_seq).toBe(n);
    const js = nc.jetstream();
    for (const seq of [1, 2, 9_999, 20_000]) {
      const m = await (await js.streams.get("ORDER")).getMessage({ seq });
      expect(JSON.parse(dec.decode(m.data))).toEqual({ i: seq - 1 });
      expect(m.subject).toBe(`order.${(seq - 1) % 4}`);
    }
    await pub.close();
  });

  it("reports a repeated msgId as a duplicate and stores it once", async () => {
    await jsm.streams.add({ name: "DUP", subjects: ["dup.>"], storage: StorageType.File });
    const pub = createJetStreamPublisher(nc);
    const first = await pub.publish("dup.a", enc.encode("1"), { msgId: "id-1" });
    const again = await pub.publish("dup.a", enc.encode("1"), { msgId: "id-1" });
    const other = await pub.publish("dup.a", enc.encode("2"), { msgId: "id-2" });
    expect(first).toEqual({ stream: "DUP", seq: 1, duplicate: false });
    expect(again).toEqual({ stream: "DUP", seq: 1, duplicate: true });
    expect(other).toEqual({ stream: "DUP", seq: 2, duplicate: false });

    const many = await pub.publishMany(
      Array.from({ length: 100 }, (_, i) => ({
        subject: "dup.b",
        data: enc.encode(String(i)),
        opts: { msgId: `id-${i % 50}`, headers: { "Content-Type": "application/json" } },
      })),
    );
    // id-1 and id-2 exist already; id-0..id-49 are each sent twice.
    expect(many).toEqual({ published: 100, duplicates: 52 });
    expect((await jsm.streams.info("DUP")).state.messages).toBe(50);
    await pub.close();
  });

  it("rejects a publish to a subject without a stream with NoStreamError", async () => {
    const pub = createJetStreamPublisher(nc);
    const p = pub.publish("nowhere.at.all", enc.encode("x"));
    await expect(p).rejects.toBeInstanceOf(NoStreamError);
    await expect(p).rejects.toThrow(/nowhere\.at\.all/);
    // flush() reports the failure once, then the publisher is usable again.
    await expect(pub.flush()).rejects.toBeInstanceOf(NoStreamError);
    await expect(pub.flush()).resolves.toBeUndefined();
    await pub.close();
  });

  // A stopping nats-server shuts its JetStream down before it closes client connections: a
  // message sent meanwhile gets 503 with no reconnect yet (the restart test below failed so in CI:
  // NoStreamError at attempt 1). A message with a msgId is re-sent once at its deadline; a second
  // 503 settles it as no stream.
  it("re-sends a msgId message once after a 503 that no reconnect explains", async () => {
    const pub = createJetStreamPublisher(nc, { timeoutMs: 300, retries: 3 });
    const acked = pub.publish("late.x", enc.encode("x"), { msgId: "late-1" });
    const outcome = acked.then(
      () => "acked",
      (err: unknown) => String(err),
    );
    const gone = pub.publish("gone.x", enc.encode("x"), { msgId: "gone-1" });
    // Sent on the next turn; the server's 503s come before its PONG to our PING.
    await new Promise((r) => setImmediate(r));
    await nc.flush();
    await jsm.streams.add({ name: "LATE", subjects: ["late.>"], storage: StorageType.File });
    expect(await outcome).toBe("acked");
    expect((await jsm.streams.info("LATE")).state.messages).toBe(1);
    await expect(gone).rejects.toBeInstanceOf(NoStreamError);
    await pub.close().catch(() => {});
  });

  it("reports a stream's error PubAck with the server's description", async () => {
    await jsm.streams.add({
      name: "SMALL",
      subjects: ["small.>"],
      storage: StorageType.Memory,
      max_msg_size: 8,
    });
    const pub = createJetStreamPublisher(nc);
    await expect(pub.publish("small.x", enc.encode("far too long a message"))).rejects.toThrow(
      /small\.x.*message size exceeds maximum/i,
    );
    await pub.close().catch(() => {});
  });

  it("flush waits for every outstanding ack", async () => {
    await jsm.streams.add({ name: "FLUSH", subjects: ["flush.>"], storage: StorageType.File });
    const pub = createJetStreamPublisher(nc, { window: 64 });
    let acked = 0;
    for (let i = 0; i < 1_000; i++) {
      // Fire and forget: more than the window, so most wait in the publisher's queue.
      void pub.publish("flush.x", enc.encode(String(i))).then(() => acked++);
    }
    expect(pub.pending()).toBe(1_000);
    await pub.flush();
    // Acks resolve before flush() does; their .then callbacks ran in the same microtask drain.
    await Promise.resolve();
    expect(acked).toBe(1_000);
    expect(pub.pending()).toBe(0);
    expect((await jsm.streams.info("FLUSH")).state.messages).toBe(1_000);
    await pub.close();
    await expect(pub.publish("flush.x", enc.encode("late"))).rejects.toBeInstanceOf(
      PublisherClosedError,
    );
  });

  it("prints publish throughput", async () => {
    await jsm.streams.add({ name: "SPEED", subjects: ["speed.>"], storage: StorageType.File });
    const data = enc.encode(JSON.stringify({ event_id: "x".repeat(36), payload: "y".repeat(150) }));
    for (const withId of [false, true]) {
      const pub = createJetStreamPublisher(nc);
      const n = 100_000;
      const t0 = performance.now();
      const { published } = await pub.publishMany(
        (function* () {
          for (let i = 0; i < n; i++) {
            yield { subject: "speed.x", data, opts: withId ? { msgId: `m-${i}` } : undefined };
          }
        })(),
      );
      const s = (performance.now() - t0) / 1000;
      expect(published).toBe(n);
      console.log(
        `publisher throughput${withId ? " (Nats-Msg-Id)" : ""}: ${Math.round(n / s)} msgs/s (${n} in ${s.toFixed(2)} s)`,
      );
      await pub.close();
    }
  });
});

describe("JetStream publisher timeouts", () => {
  let nats: TestNats;
  let nc: NatsConnection;

  beforeAll(async () => {
    nats = await setupNats();
    nc = await connectNats({ servers: nats.url, name: "publisher-timeout-test" });
  });

  afterAll(async () => {
    await nc?.close();
    await nats?.cleanup();
  });

  it("rejects a message without msgId at its first timeout", async () => {
    // A plain subscriber that never answers: the server sees interest, so no 503.
    const silent = nc.subscribe("silent.>", { callback: () => {} });
    const pub = createJetStreamPublisher(nc, { timeoutMs: 100 });
    const p = pub.publish("silent.x", enc.encode("x"));
    await expect(p).rejects.toBeInstanceOf(PublishTimeoutError);
    await expect(p).rejects.toThrow(/silent\.x.*1 attempt\b/);
    await pub.close().catch(() => {});
    silent.unsubscribe();
  });

  it("retries a message with msgId, with the same Nats-Msg-Id, until it is acked", async () => {
    const seen: string[] = [];
    // A fake stream that answers only the third attempt.
    const fake = nc.subscribe("flaky.>", {
      callback: (_err, m) => {
        seen.push(m.headers?.get("Nats-Msg-Id") ?? "");
        if (seen.length === 3) m.respond(enc.encode('{"stream":"FAKE","seq":7}'));
      },
    });
    const pub = createJetStreamPublisher(nc, { timeoutMs: 100, retries: 3 });
    await expect(pub.publish("flaky.x", enc.encode("x"), { msgId: "abc" })).resolves.toEqual({
      stream: "FAKE",
      seq: 7,
      duplicate: false,
    });
    expect(seen).toEqual(["abc", "abc", "abc"]);
    await pub.close();
    fake.unsubscribe();
  });
});

describe("JetStream publisher while the event loop stalls", () => {
  let nats: TestNats;
  let nc: NatsConnection;

  beforeAll(async () => {
    nats = await setupNats();
    nc = await connectNats({ servers: nats.url, name: "publisher-stall-test" });
  });

  afterAll(async () => {
    await nc?.close();
    await nats?.cleanup();
  });

  // After a stall, timers run before the I/O phase that reads the PubAcks that came meanwhile:
  // every message in flight looked timed out (5 s freshness outliers: whole windows of
  // hops re-sent after GC or a long turn, KV puts failed).
  it("does not count a stalled event loop against the PubAck timeout", async () => {
    const jsm = await nc.jetstreamManager();
    await jsm.streams.add({ name: "STALL", subjects: ["stall.>"], storage: StorageType.File });
    const copies: string[] = [];
    const watch = nc.subscribe("stall.>", { callback: (_e, m) => copies.push(m.subject) });
    await nc.flush();
    const pub = createJetStreamPublisher(nc, { timeoutMs: 200, retries: 3 });
    const plain = pub.publish("stall.plain", enc.encode("a"));
    const withId = pub.publish("stall.id", enc.encode("b"), { msgId: "stall-b" });
    // Sent on the next turn; then the loop is held for three timeouts.
    await new Promise((r) => setImmediate(r));
    const until = Date.now() + 700;
    while (Date.now() < until) {
      /* a long synchronous turn */
    }
    await expect(plain).resolves.toMatchObject({ stream: "STALL", duplicate: false });
    await expect(withId).resolves.toMatchObject({ stream: "STALL", duplicate: false });
    await nc.flush();
    expect(copies.sort()).toEqual(["stall.id", "stall.plain"]);
    expect((await jsm.streams.info("STALL")).state.messages).toBe(2);
    watch.unsubscribe();
    await pub.close();
  });
});

describe("JetStream publisher across a server restart", () => {
  let nats: TestNats;
  let nc: NatsConnection;

  beforeAll(async () => {
    nats = await setupNats();
    nc = await connectNats({ servers: nats.url, name: "publisher-restart-test" });
  });

  afterAll(async () => {
    await nc?.close();
    await nats?.cleanup();
  });

  // A retry that reaches the restarted server before its JetStream answers gets 503 "no
  // responders": retried like a timeout, not settled as "no stream" (failed 2 of 3 CI runs so).
  it("retries with the same msgId, so every message is stored exactly once", async () => {
    const jsm = await nc.jetstreamManager();
    await jsm.streams.add({
      name: "RESTART",
      subjects: ["restart.>"],
      storage: StorageType.File,
    });
    const pub = createJetStreamPublisher(nc, { window: 128, timeoutMs: 500, retries: 20 });
    const n = 5_000;
    let pendingAtStop = 0;
    const { published } = await pub.publishMany(
      (async function* () {
        for (let i = 0; i < n; i++) {
          if (i === 2_000) {
            // Stop the server with acks outstanding: they are lost and must be retried.
            pendingAtStop = pub.pending();
            await nats.restart();
          }
          yield { subject: "restart.x", data: enc.encode(String(i)), opts: { msgId: `r-${i}` } };
        }
      })(),
    );
    expect(pendingAtStop).toBeGreaterThan(0);
    expect(published).toBe(n);
    const info = await (await nc.jetstreamManager()).streams.info("RESTART");
    expect(info.state.messages).toBe(n);
    await pub.close();
  });

  it("retries a 503 that follows a reconnect: the server is back, its JetStream is not yet", async () => {
    const jsm = await nc.jetstreamManager();
    await jsm.streams.add({ name: "WAKE", subjects: ["wake.>"], storage: StorageType.File });
    const pub = createJetStreamPublisher(nc, { window: 16, timeoutMs: 300, retries: 20 });
    const reconnected = async () => {
      for await (const st of nc.status()) if (st.type === Events.Reconnect) return;
    };
    // The same port without JetStream: the client reconnects and nothing answers a publish, as
    // while a restarted server recovers its streams (deterministic here, a race in real life).
    await nats.server.stop();
    const back = reconnected();
    const plain = await startEmbeddedNats({
      port: nats.server.port,
      storeDir: nats.storeDir,
      extraArgs: ["-js=false"],
    });
    try {
      await back;
      const acked = pub.publish("wake.x", enc.encode("late"), { msgId: "wake-1" });
      const outcome = acked.then(
        () => "acked",
        (err: unknown) => String(err),
      );
      // Several attempts get 503 meanwhile: none settles it as "no stream".
      await new Promise((r) => setTimeout(r, 1_500));
      await plain.stop();
      await nats.restart();
      expect(await outcome).toBe("acked");
      expect((await acked).duplicate).toBe(false);
    } finally {
      await plain.stop();
    }
    expect((await jsm.streams.info("WAKE")).state.messages).toBe(1);
    await pub.close();
  });
});

/**
 * KV puts carry no Nats-Msg-Id (a replay must put every value again, in order: commit 979195e),
 * so a timed-out put used to get one attempt, and under load a PubAck later than the timeout
 * failed the stage (a restart loop). A put is now re-sent while it is the newest of its key, and
 * never after a newer one. The server is stopped (SIGSTOP) to make its PubAcks late.
 */
describe("JetStream publisher: KV upserts while the server stalls", () => {
  let nats: TestNats;
  let nc: NatsConnection;

  beforeAll(async () => {
    nats = await setupNats();
    nc = await connectNats({ servers: nats.url, name: "publisher-upsert-test" });
  });

  afterAll(async () => {
    await nc?.close();
    await nats?.cleanup();
  });

  const stall = async (ms: number, during: () => Promise<void> | void) => {
    process.kill(nats.server.pid, "SIGSTOP");
    try {
      await during();
      await new Promise((r) => setTimeout(r, ms));
    } finally {
      process.kill(nats.server.pid, "SIGCONT");
    }
  };

  it("waits out a late PubAck instead of failing the put", async () => {
    const kv = await nc.jetstream().views.kv("upsert_late");
    const pub = createJetStreamPublisher(nc, { timeoutMs: 150, retries: 20 });
    let put: Promise<PubAckInfo> | undefined;
    // Three timeouts pass while the server is stopped.
    await stall(600, () => {
      put = pub.publish("$KV.upsert_late.k", enc.encode("v1"), { upsert: true });
    });
    await expect(put).resolves.toMatchObject({ stream: "KV_upsert_late" });
    await expect(pub.flush()).resolves.toBeUndefined();
    expect(dec.decode((await kv.get("k"))!.value)).toBe("v1");
    await pub.close();
  });

  // Seen at load 15 (bench step 3): a trending put failed after 2 attempts, its newer put of the
  // same key already acked: the older one was then neither the newest nor following one.
  it("settles an older put whose ack never comes once a newer one of its key is acked", async () => {
    let n = 0;
    // A fake bucket that answers every message but the first.
    const fake = nc.subscribe("$KV.fake.>", {
      callback: (_err, m) => {
        if (n++ > 0) m.respond(enc.encode(`{"stream":"KV_fake","seq":${n}}`));
      },
    });
    const pub = createJetStreamPublisher(nc, { timeoutMs: 150, retries: 3 });
    const older = pub.publish("$KV.fake.k", enc.encode("old"), { upsert: true });
    const newer = pub.publish("$KV.fake.k", enc.encode("new"), { upsert: true });
    await expect(newer).resolves.toMatchObject({ seq: 2 });
    await expect(older).resolves.toMatchObject({ seq: 2 });
    await expect(pub.flush()).resolves.toBeUndefined();
    expect(n).toBe(2); // the older value was not re-sent
    fake.unsubscribe();
    await pub.close();
  });

  it("never re-sends an older value after a newer one of the same key", async () => {
    const kv = await nc.jetstream().views.kv("upsert_order", { history: 64 });
    const pub = createJetStreamPublisher(nc, { timeoutMs: 300, retries: 20 });
    const puts: Promise<PubAckInfo>[] = [];
    await stall(400, async () => {
      puts.push(pub.publish("$KV.upsert_order.k", enc.encode("old"), { upsert: true }));
      // Sent before the old value's first timeout: a re-send of "old" would be stored after it.
      await new Promise((r) => setTimeout(r, 100));
      puts.push(pub.publish("$KV.upsert_order.k", enc.encode("new"), { upsert: true }));
      puts.push(pub.publish("$KV.upsert_order.other", enc.encode("x"), { upsert: true }));
    });
    await Promise.all(puts);
    await expect(pub.flush()).resolves.toBeUndefined();
    const stored: string[] = [];
    for await (const e of await kv.history({ key: "k" })) stored.push(dec.decode(e.value));
    expect(stored[0]).toBe("old");
    expect(stored.slice(stored.indexOf("new"))).not.toContain("old");
    expect(dec.decode((await kv.get("k"))!.value)).toBe("new");
    expect(dec.decode((await kv.get("other"))!.value)).toBe("x");
    expect(pub.pending()).toBe(0);
    await pub.close();
  });
});
