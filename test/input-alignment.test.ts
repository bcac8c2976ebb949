import { describe, expect, it } from "vitest";
import { StorageType } from "nats";
import { startNats, tempStateDb, useCleanups, waitFor } from "./helpers/harness.js";
import {
  ALIGN_BEHIND,
  createStageInstance,
  decodeEnvelope,
  envelopeCodec,
  type HostTransport,
  type PoisonLedger,
} from "../actors/host/index.js";
import { natsHostTransport } from "../connectors/nats/host-transport.js";

/**
 * Input alignment on a real server: two instances of one stage, each reading its partition's
 * hops (`in.0`, `in.1`) on its own consumer, with a backlog on both, where partition 1's hops are
 * all further on (upTo 1001…) than partition 0's (1…). Every delivery and every handling is
 * logged in the order the event loop saw them.
 */
const HOPS = 60;

describe("input alignment", () => {
  const cleanups = useCleanups();

  it("instances of a stage take their hops lowest position first, and each takes all of its own in order", async () => {
    const { nc, jsm } = await startNats(cleanups);
    await jsm.streams.add({ name: "IN", subjects: ["in.>"], storage: StorageType.File });
    const db = await tempStateDb(cleanups, "reco-align-");
    const js = nc.jetstream();
    const codec = envelopeCodec();
    const base = [0, 1000];
    // Interleaved in the stream, as a producer of both partitions publishes them.
    for (let h = 1; h <= HOPS; h++)
      for (const p of [0, 1]) {
        const upTo = base[p]! + h;
        const prev = h === 1 ? 0 : upTo - 1;
        await js.publish(`in.${p}`, codec.encode(upTo, -1, [{ s: upTo }], prev));
      }

    type Entry = { kind: "deliver" | "handle"; p: number; upTo: number; behind?: boolean };
    const log: Entry[] = [];
    const inner = natsHostTransport(nc);
    const transport: HostTransport = {
      ...inner,
      openSource: (o) =>
        inner.openSource({
          ...o,
          callback: (m) => {
            log.push({
              kind: "deliver",
              p: Number(o.filterSubject.slice(3)),
              upTo: decodeEnvelope(m.data).upTo,
              behind: m.info.pending >= ALIGN_BEHIND,
            });
            o.callback(m);
          },
        }),
    };
    const instances = [0, 1].map((p) =>
      createStageInstance(
        {
          stage: "aligned",
          partition: p,
          stream: "IN",
          subject: `in.${p}`,
          input: "envelope",
          batching: "per-input",
          create: () => ({
            handle: (m) => {
              log.push({ kind: "handle", p, upTo: decodeEnvelope(m.data).upTo });
              // Partition 0 is the slower to handle: it holds hops while partition 1's come.
              if (p === 0) for (const until = performance.now() + 3; performance.now() < until;);
            },
          }),
        },
        {
          transport,
          snapshots: db.instance("aligned", p),
          snapshotIntervalMs: 600_000,
          snapshotEveryMessages: 1_000_000,
          maxAttempts: 3,
          alignAhead: 0,
        },
        new Map() as PoisonLedger,
      ),
    );
    for (const i of instances) cleanups.add(() => i.actor.stop());
    await Promise.all(instances.map((i) => i.actor.start()));
    await waitFor(
      () => instances[0]!.position() === 2 * HOPS - 1 && instances[1]!.position() === 2 * HOPS,
      "every hop taken",
      20_000,
    );

    // Each instance took all of its own hops, in order.
    for (const p of [0, 1]) {
      const handled = log.filter((e) => e.kind === "handle" && e.p === p).map((e) => e.upTo);
      expect(handled).toEqual(Array.from({ length: HOPS }, (_, h) => base[p]! + h + 1));
    }
    // Replay the log. A hop delivered while its input was behind and the other instance held a
    // lower one (delivered, not yet handled) is handled after that one: it could not go on while
    // the floor was below it. (One handed on while the other held nothing may be handled after a
    // lower one comes; once a delivery comes live, with fewer than ALIGN_BEHIND left, it and the
    // instance's earlier ones go on at once.)
    const held: number[][] = [[], []];
    const handled: Set<number>[] = [new Set(), new Set()];
    const after = new Map<number, number[]>();
    const passed: string[] = [];
    let waited = 0;
    for (const e of log) {
      const other = 1 - e.p;
      if (e.kind === "deliver") {
        held[e.p]!.push(e.upTo);
        const lower = held[other]!.filter((u) => u < e.upTo);
        if (lower.length > 0 && e.behind) waited++;
        after.set(e.upTo, lower);
        if (!e.behind) for (const u of held[e.p]!) after.set(u, []);
        continue;
      }
      expect(held[e.p]![0]).toBe(e.upTo);
      held[e.p]!.shift();
      handled[e.p]!.add(e.upTo);
      for (const u of after.get(e.upTo)!)
        if (!handled[other]!.has(u)) passed.push(`${e.p}:${e.upTo} before ${other}:${u}`);
    }
    // The backlog had hops delivered while the other held lower ones: alignment had work.
    expect(waited).toBeGreaterThan(0);
    expect(passed).toEqual([]);
  }, 30_000);
});
