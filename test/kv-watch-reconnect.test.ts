import { afterEach, describe, expect, it } from "vitest";
import { connect, type KvEntry, type NatsConnection } from "nats";
import { createKvWatchActor } from "../connectors/nats/kv-watch.js";
import { setupNats, type TestNats } from "./helpers/nats.js";
import { sleep } from "./helpers/harness.js";

/*
 * A table that follows a KV bucket (popularity, trending, the catalogue) picks up a put made
 * right after nats-server restarted within a few seconds, without failing: it watches again from
 * the revision after its last one when the connection comes back. An ordered consumer left to
 * itself saw such a put 9-13 s later.
 */

let nats: TestNats | undefined;
let nc: NatsConnection | undefined;
afterEach(async () => {
  await nc?.close();
  await nats?.cleanup();
  nc = nats = undefined;
});

async function until(cond: () => boolean, ms: number): Promise<number> {
  const t0 = Date.now();
  while (!cond() && Date.now() - t0 < ms) await sleep(50);
  return Date.now() - t0;
}

describe("a KV-following table across a nats-server restart", () => {
  it("applies a put made after the restart within 3 s, in order, without failing", async () => {
    nats = await setupNats();
    nc = await connect({
      servers: nats.url,
      maxReconnectAttempts: -1,
      reconnectTimeWait: 250,
      noAsyncTraces: true,
    });
    const kv = await nc.jetstream().views.kv("watch_probe");
    await kv.put("a", "1");
    await kv.put("b", "1");
    const table = new Map<string, string>();
    const applied: string[] = [];
    const actor = createKvWatchActor(nc, {
      id: "probe-table",
      bucket: "watch_probe",
      apply(e: KvEntry) {
        applied.push(`${e.key}=${e.string()}@${e.revision}`);
        table.set(e.key, e.string());
      },
    });
    const errors: unknown[] = [];
    actor.events$.subscribe((ev) => {
      if (ev.type === "error") errors.push(ev.error);
    });
    await actor.start();
    await until(() => table.size === 2, 5_000);
    expect(Object.fromEntries(table)).toEqual({ a: "1", b: "1" });

    const reconnected = (async () => {
      for await (const s of nc.status()) if (s.type === "reconnect") return;
    })();
    await nats.restart(300);
    await reconnected;
    let rev = 0;
    for (let k = 0; rev === 0 && k < 40; k++)
      rev = await kv.put("a", "2").catch(async () => (await sleep(250), 0));
    expect(rev).toBeGreaterThan(0);
    const waited = await until(() => table.get("a") === "2", 15_000);
    expect(table.get("a")).toBe("2");
    expect(waited).toBeLessThan(3_000);

    // Later puts keep coming through the new watch, and nothing older is applied after them.
    await kv.put("b", "3");
    await until(() => table.get("b") === "3", 5_000);
    expect(Object.fromEntries(table)).toEqual({ a: "2", b: "3" });
    const revisions = applied.map((x) => Number(x.split("@")[1]));
    expect(revisions).toEqual([...revisions].sort((x, y) => x - y));
    expect(errors).toEqual([]);
    expect(actor.getStatus()).toBe("running");
    await actor.stop();
  }, 60_000);
});
