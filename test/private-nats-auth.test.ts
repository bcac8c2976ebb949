import { afterEach, describe, expect, it } from "vitest";
import { execFile } from "node:child_process";
import { mkdtemp, readFile, rm, stat, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { promisify } from "node:util";
import { connect, headers, type NatsConnection } from "nats";
import { freePort } from "../connectors/nats/embedded-server.js";
import { connectNats } from "../connectors/nats/connection.js";
import { ensureEventsStream } from "../connectors/nats/streams.js";
import { STREAMS } from "../connectors/nats/topology.js";
import {
  credentialsFile,
  publisherFile,
  startPrivateNats,
  type PublisherConnection,
} from "../bin/private-nats.js";

/**
 * The embedded NATS had no authentication; any local process wrote a
 * popularity row (and user 306441847 was served it at rank 1) or an idle marker. Now it requires
 * credentials made at the first start and kept in DATA_DIR; publishers may write `events.<type>`
 * only, the engine's subjects are the engine's alone.
 */
const root = resolve(import.meta.dirname, "..");
const run = promisify(execFile);
const lateHeaders = () => {
  const h = headers();
  h.set("Reco-Reason", "behind_watermark:user");
  return h;
};

describe("the private nats-server's credentials", () => {
  const cleanups: (() => Promise<unknown>)[] = [];
  afterEach(async () => {
    for (const c of cleanups.reverse()) await c().catch(() => undefined);
    cleanups.length = 0;
  });

  const start = async (dataDir?: string) => {
    const dir = dataDir ?? (await mkdtemp(join(tmpdir(), "reco-auth-")));
    if (!dataDir) cleanups.push(() => rm(dir, { recursive: true, force: true }));
    const priv = await startPrivateNats({ dataDir: dir, port: await freePort() });
    cleanups.push(() => priv.server.stop());
    const engine = await connectNats({ servers: priv.engineUrl, name: "t" });
    cleanups.push(() => engine.close());
    await ensureEventsStream(await engine.jetstreamManager());
    const publisher = JSON.parse(await readFile(publisherFile(dir), "utf8")) as PublisherConnection;
    return { dir, priv, engine, publisher };
  };

  const refused = async (nc: NatsConnection, subject: string) => {
    const err = await nc
      .jetstream()
      .publish(subject, "{}", { timeout: 1_500 })
      .then(() => undefined)
      .catch((e: unknown) => String(e));
    return err;
  };

  it("refuses a client without them; the engine may do anything", async () => {
    const { priv, engine } = await start();
    await expect(connect({ servers: priv.server.url, timeout: 2_000 })).rejects.toThrow(
      /Authorization Violation/i,
    );
    await (await engine.jetstreamManager()).streams.add({ name: "T", subjects: ["reco.t.>"] });
    expect((await engine.jetstream().publish("reco.t.1", "x")).seq).toBe(1);
  });

  it("a publisher (nats-publisher.json as it is) writes events.<type> and nothing of the engine's", async () => {
    const { publisher, engine } = await start();
    const nc = await connect(publisher);
    cleanups.push(() => nc.close());
    expect((await nc.jetstream().publish("events.view", "{}")).stream).toBe("EVENTS");
    expect(await refused(nc, "events._idle")).toMatch(/Permissions Violation|503|timeout/i);
    expect(await refused(nc, "reco.parse.0")).toMatch(/Permissions Violation|503|timeout/i);
    expect(await refused(nc, "$KV.reco_popularity.p1")).toMatch(
      /Permissions Violation|503|timeout/i,
    );
    // It may read the late stream, as `reco replay`'s report does (an ordered consumer).
    const ejsm = await engine.jetstreamManager();
    await ejsm.streams.add({ name: STREAMS.late, subjects: ["reco.late"] });
    await engine.jetstream().publish("reco.late", "{}", { headers: lateHeaders() });
    const reader = await nc.jetstream().consumers.get(STREAMS.late, { headers_only: true });
    const m = await reader.next({ expires: 2_000 });
    expect(m?.headers?.get("Reco-Reason")).toBe("behind_watermark:user");
    // Nor may it reconfigure the streams (e.g. widen EVENTS to capture reco.>).
    await expect(
      (await nc.jetstreamManager()).streams.update("EVENTS", { subjects: ["events.>", "reco.>"] }),
    ).rejects.toThrow();
  });

  it("are kept in DATA_DIR (owner-only) and the same after a restart", async () => {
    const first = await start();
    const before = first.publisher.pass;
    await first.priv.server.stop();
    const again = await start(first.dir);
    expect(again.publisher.pass).toBe(before);
    for (const f of [credentialsFile(first.dir), publisherFile(first.dir)])
      expect((await stat(f)).mode & 0o077).toBe(0);
  });

  it("reco replay finds the publisher credentials in DATA_DIR by itself", async () => {
    const { dir, engine } = await start();
    const file = join(dir, "events.jsonl");
    const line = (i: number) =>
      JSON.stringify({
        event_id: `00000000-0000-4000-8000-00000000000${i}`,
        event_type: "view",
        event_ts: new Date().toISOString(),
        user_id: `u${i}`,
        item_id: "p1",
      });
    await writeFile(file, `${line(1)}\n${line(2)}\n`);
    const env = { ...process.env };
    delete env.NATS_URL;
    const out = await run(process.execPath, [join(root, "bin", "reco.mjs"), "replay", file], {
      env: { ...env, DATA_DIR: dir },
      timeout: 30_000,
    });
    expect(out.stdout).toMatch(/sent 2 events/);
    const info = await (await engine.jetstreamManager()).streams.info("EVENTS");
    expect(info.state.messages).toBe(2);
  });
});
