/**
 * Step 2's rows on where the time went, µs per event: each stage (or chain, CHAINING=on) on its
 * process's event loop, what the main threads did outside the stages (the nats client above
 * all), the libuv pool (LevelDB's calls), the threads the app started (LevelDB's compaction),
 * V8's helper threads, GC pauses and nats-server. bench/README.md says how each is measured.
 */
import type { App } from "../../bin/app.js";
import type { ingest } from "../ingest-run.js";
import type { Report } from "../report.js";
import type { PromSample } from "../util.js";

type Ingested = Awaited<ReturnType<typeof ingest>>;

/** Sum of a counter by its `stage` label. */
function byStage(list: { labels: Partial<Record<string, string | number>>; value: number }[]) {
  const out = new Map<string, number>();
  for (const s of list) {
    const stage = String(s.labels.stage);
    out.set(stage, (out.get(stage) ?? 0) + s.value);
  }
  return out;
}

export async function breakdownRows(
  report: Report,
  r: Ingested,
  samples: PromSample[],
  events: number,
): Promise<void> {
  const app: App = r.app;
  const all = byStage(samples.filter((s) => s.name === "reco_stage_busy_seconds_total"));
  const childJson = (await app.parseProcess?.childMetrics()) ?? [];
  const child = byStage(
    childJson.find((m) => m.name === "reco_stage_busy_seconds_total")?.values ?? [],
  );
  // The app's /metrics merges the parse process's counters into its own: the main process's
  // share is what is left.
  const main = new Map([...all].map(([k, v]) => [k, v - (child.get(k) ?? 0)]));
  const us = (secs: number) => (secs / events) * 1e6;
  const fmt = (secs: number) => us(secs).toFixed(1);
  /**
   * A stage's busy time is wall time on its loop: it includes the time its thread was runnable
   * but waited for a CPU. Its CPU time is estimated as that × the thread's share on a CPU of the
   * time it was running or runnable over the run (schedstat).
   */
  const onCpu = (run: number, wait: number) => (run + wait > 0 ? run / (run + wait) : 1);
  const mainShare = onCpu(r.mainThreadSecs, r.mainThreadWaitSecs);
  const childShare = r.childThreadSecs ? onCpu(r.childThreadSecs.run, r.childThreadSecs.wait) : 1;
  const total = (m: Map<string, number>) => [...m.values()].reduce((a, b) => a + b, 0);
  const where = (inChild: boolean) =>
    app.parseProcess ? (inChild ? " (parse process)" : " (main process)") : "";
  const stageRows = (m: Map<string, number>, share: number, inChild: boolean) => {
    for (const [stage, secs] of [...m].filter(([, v]) => v > 0).sort((a, b) => b[1] - a[1]))
      report.row({
        step: "2",
        figure: `  where the time goes: ${stage.includes("+") ? "chain" : "stage"} ${stage}${where(inChild)}`,
        value: `${fmt(secs * share)} µs (est.)`,
        baseline: `${fmt(secs)} µs on its event loop (wall)`,
      });
  };
  stageRows(main, mainShare, false);
  if (app.parseProcess) stageRows(child, childShare, true);
  // What each stage sends on per event (hop records, raw messages, KV upserts): every hop record
  // is encoded, published, stored, decoded and taken again, so this is where fan-out shows (the
  // history stages' pairs were ~4.7 per event with 8 item partitions of co-visitation, 1.8 with 2).
  const sent = byStage(samples.filter((s) => s.name === "reco_stage_records_out_total"));
  report.row({
    step: "2",
    figure: "  records the stages sent on per event (hop records, raw messages, KV upserts)",
    value: (total(sent) / events).toFixed(2),
    baseline: [...sent]
      .filter(([, v]) => v > 0)
      .sort((a, b) => b[1] - a[1])
      .map(([stage, v]) => `${stage} ${(v / events).toFixed(2)}`)
      .join(", "),
  });

  // The main threads' CPU less the stages' (estimated): the nats client (socket reads and
  // writes, protocol parsing, JetStream pulls, acks and publishes of every hop), gRPC, timers,
  // metrics, LevelDB's JavaScript side and the GC pauses that fell outside a stage.
  const outsideMain = Math.max(0, r.mainThreadSecs - total(main) * mainShare);
  report.row({
    step: "2",
    figure: `  where the time goes: main thread outside the stages (nats client, timers, GC)${where(false)}`,
    value: `${fmt(outsideMain)} µs (est.)`,
    baseline: `main thread ${fmt(r.mainThreadSecs)} µs on a CPU less the stages' estimate`,
  });
  if (app.parseProcess && r.childThreadSecs) {
    const outsideChild = Math.max(0, r.childThreadSecs.run - total(child) * childShare);
    report.row({
      step: "2",
      figure: "  where the time goes: parse process's main thread outside its stages (nats client)",
      value: `${fmt(outsideChild)} µs (est.)`,
      baseline: `its main thread ${fmt(r.childThreadSecs.run)} µs on a CPU less the stages' estimate`,
    });
    const childOther = Math.max(0, r.parseCpuSecs - r.childThreadSecs.run);
    report.row({
      step: "2",
      figure:
        "  where the time goes: parse process's other threads (V8 helpers, libuv pool, LevelDB)",
      value: `${fmt(childOther)} µs`,
      baseline: "its CPU less its main thread's, not split further",
    });
  }
  const k = r.threadKinds;
  report.row({
    step: "2",
    figure: "  where the time goes: LevelDB's calls on the libuv pool",
    value: `${fmt(k.libuv)} µs`,
    baseline:
      "CPU of the pool's threads (found by giving the pool work before the run; fs calls too)",
  });
  report.row({
    step: "2",
    figure:
      "  where the time goes: threads the app started: LevelDB compaction (ALS workers excluded)",
    value: `${fmt(Math.max(0, k.started - r.alsCpuSecs))} µs (est.)`,
    baseline: `${fmt(k.started)} µs with the ALS workers, sampled every 250 ms`,
  });
  report.row({
    step: "2",
    figure:
      "  where the time goes: V8's helper threads (concurrent GC, compilation) and node's own",
    value: `${fmt(k.v8)} µs`,
    baseline: "CPU of the threads there before the app started, the libuv pool's excepted",
  });
  report.row({
    step: "2",
    figure: "  where the time goes: GC pauses on the main thread",
    value: `${((r.gc.gcMs * 1000) / events).toFixed(1)} µs (wall)`,
    baseline: "inside the rows above (stages, outside the stages), not in addition",
  });
  report.row({
    step: "2",
    figure: "  where the time goes: nats-server",
    value: `${fmt(r.natsCpuSecs)} µs`,
    baseline: "its process's CPU (not in the app's CPU per event)",
  });
}
