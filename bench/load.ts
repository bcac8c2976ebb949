/**
 * A background load in its own process: publishes generated events with current event times at
 * a steady rate to `events.<type>`, so the process under test does not also pay for publishing.
 * Driven over IPC by `startLoad()`; run as a child only.
 */
import type { ChildProcess } from "node:child_process";
import { watchLoopDelay } from "./loop-delay.js";
import { connectNats } from "../connectors/nats/connection.js";
import { createJetStreamPublisher } from "../connectors/nats/publisher.js";
import {
  DEFAULT_GENERATOR,
  createGenerator,
  toMessage,
  type GeneratorOptions,
} from "./generator.js";
import { nextMessage, repoPath, spawnTs, stopChild } from "./child.js";
import { sleep } from "./util.js";

export interface LoadStats {
  /** Events handed to the publisher since the rate was (re)set. */
  sent: number;
  /** Events due but not sent because 8,192 publishes were already waiting for acks. */
  skipped: number;
  /** Of those, acked by JetStream. */
  acked: number;
  failed: number;
  firstError: string;
  /** Seconds since the rate was (re)set. */
  seconds: number;
  /** `acked / seconds`. */
  rate: number;
  /** This publisher process's event-loop delay since the rate was (re)set, p99 and max (ms). */
  loopP99Ms: number;
  loopMaxMs: number;
}

export interface Load {
  /** Sets a new rate (events/s) and restarts the counts. */
  setRate(rate: number): void;
  stats(): Promise<LoadStats>;
  /** Stops publishing, waits for the acks, ends the process; the counts since the last rate. */
  stop(): Promise<LoadStats>;
}

type Generator = Pick<GeneratorOptions, "seed" | "users" | "userDist">;

/** Starts the load process against `natsUrl` at `rate` events/s (0: idle until setRate). */
export async function startLoad(
  natsUrl: string,
  rate: number,
  gen?: Partial<Generator>,
): Promise<Load> {
  const child = spawnTs(repoPath("./load.ts"), [
    "--load",
    JSON.stringify({ natsUrl, rate, gen: gen ?? {} }),
  ]);
  await nextMessage(child, (m) => ((m as { type?: string }).type === "ready" ? true : undefined));
  const ask = async (msg: object, type: string): Promise<LoadStats> => {
    child.send(msg);
    return nextMessage(child, (m) =>
      (m as { type?: string }).type === type ? (m as { stats: LoadStats }).stats : undefined,
    );
  };
  let stopped: Promise<LoadStats> | undefined;
  return {
    setRate: (r) => child.send({ rate: r }),
    stats: () => ask({ stats: true }, "stats"),
    stop() {
      stopped ??= (async () => {
        const s = await ask({ stop: true }, "done").catch(() => undefined);
        await stopChild(child as ChildProcess, 5000);
        return (
          s ?? {
            sent: 0,
            skipped: 0,
            acked: 0,
            failed: 0,
            firstError: "no answer",
            seconds: 0,
            rate: 0,
            loopP99Ms: NaN,
            loopMaxMs: NaN,
          }
        );
      })();
      return stopped;
    },
  };
}

async function runLoad(o: { natsUrl: string; rate: number; gen: Partial<Generator> }) {
  const nc = await connectNats({ servers: o.natsUrl, name: "reco-bench-load" });
  const pub = createJetStreamPublisher(nc, { window: 1024 });
  const gen = createGenerator({ ...DEFAULT_GENERATOR, seed: 7, ...o.gen, start: Date.now() });
  let rate = o.rate;
  let t0 = performance.now();
  let scheduled = 0;
  let sent = 0;
  let skipped = 0;
  let acked = 0;
  let failed = 0;
  let firstError = "";
  let epoch = 0;
  let stopping = false;
  const loop = watchLoopDelay(1);
  const stats = (): LoadStats => {
    const seconds = (performance.now() - t0) / 1000;
    return {
      sent,
      skipped,
      acked,
      failed,
      firstError,
      seconds,
      rate: acked / seconds,
      loopP99Ms: loop.read().p99Ms,
      loopMaxMs: loop.read().maxMs,
    };
  };
  process.on("message", (m: { rate?: number; stats?: boolean; stop?: boolean }) => {
    if (m.rate !== undefined) {
      rate = m.rate;
      t0 = performance.now();
      scheduled = sent = skipped = acked = failed = 0;
      epoch++;
      loop.reset();
    }
    if (m.stats) process.send?.({ type: "stats", stats: stats() });
    if (m.stop) stopping = true;
  });
  // The bench went away: stop with it.
  process.once("disconnect", () => process.exit(0));
  process.send?.({ type: "ready" });
  while (!stopping) {
    const due = Math.floor(((performance.now() - t0) / 1000) * rate);
    const e = epoch;
    // Never queue without bound: a publisher that cannot keep up shows as a lower rate.
    for (; scheduled < due; scheduled++) {
      if (pub.pending() >= 8192) {
        skipped++;
        continue;
      }
      sent++;
      const m = toMessage(gen.next(Date.now()));
      pub.publish(m.subject, m.data).then(
        () => e === epoch && acked++,
        (err: unknown) => {
          if (e !== epoch) return;
          failed++;
          firstError ||= err instanceof Error ? err.message : String(err);
        },
      );
    }
    await sleep(5);
  }
  await pub.flush().catch(() => undefined);
  const s = stats();
  process.send?.({ type: "done", stats: s });
  await pub.close().catch(() => undefined);
  await nc.close();
}

const arg = process.argv.indexOf("--load");
if (arg > 0)
  runLoad(JSON.parse(process.argv[arg + 1] ?? "{}") as Parameters<typeof runLoad>[0]).then(
    () => process.exit(0),
    (err: unknown) => {
      console.error("bench load:", err);
      process.exit(1);
    },
  );
