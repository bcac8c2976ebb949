/**
 * What the stages' metrics say about where a process's event loop went: time per event by stage
 * (step 2), and the longest single holds (steps 3 and 4b).
 */
import type { App } from "../bin/app.js";
import { fmtMs, type PromSample } from "./util.js";

/**
 * Step 2's note on where each process's main thread went: every stage's time on the event loop
 * (reco_stage_busy_seconds_total, summed over partitions) per event, by process.
 */
export async function busyNote(app: App, samples: PromSample[], events: number): Promise<string> {
  const byStage = (list: { labels: Partial<Record<string, string | number>>; value: number }[]) => {
    const out = new Map<string, number>();
    for (const s of list) {
      const stage = String(s.labels.stage);
      out.set(stage, (out.get(stage) ?? 0) + s.value);
    }
    return out;
  };
  const all = byStage(samples.filter((s) => s.name === "reco_stage_busy_seconds_total"));
  const childJson = (await app.parseProcess?.childMetrics()) ?? [];
  const child = byStage(
    childJson.find((m) => m.name === "reco_stage_busy_seconds_total")?.values ?? [],
  );
  const us = (secs: number) => ((secs / events) * 1e6).toFixed(1);
  const list = (m: Map<string, number>) =>
    [...m.entries()]
      .filter(([, v]) => v > 0)
      .sort((a, b) => b[1] - a[1])
      .map(([k, v]) => `${k} ${us(v)}`)
      .join(", ");
  const main = new Map([...all].map(([k, v]) => [k, v - (child.get(k) ?? 0)]));
  const total = (m: Map<string, number>) => [...m.values()].reduce((a, b) => a + b, 0);
  return (
    `Step 2, time each stage held its process's event loop (reco_stage_busy_seconds_total, all ` +
    `partitions), µs per event: main process ${us(total(main))} (${list(main)})` +
    (app.parseProcess ? `; child process ${us(total(child))} (${list(child)})` : "") +
    "."
  );
}

/**
 * The stages that held their process's event loop longest with one message (a hop of many
 * records, a snapshot capture), from reco_stage_busy_longest_seconds: the worst of each stage's
 * partitions, the longest first. Wall time on the loop, so a loaded machine's preemptions are in.
 */
export function longestNote(samples: PromSample[], since?: PromSample[], top = 6): string {
  const worst = (list: PromSample[]) => {
    const out = new Map<string, number>();
    for (const s of list)
      if (s.name === "reco_stage_busy_longest_seconds") {
        const stage = String(s.labels.stage);
        out.set(stage, Math.max(out.get(stage) ?? 0, s.value));
      }
    return out;
  };
  const before = since ? worst(since) : new Map<string, number>();
  const rose = [...worst(samples)].filter(([stage, v]) => v > (before.get(stage) ?? 0));
  if (rose.length === 0) return "none longer than before";
  return rose
    .sort((a, b) => b[1] - a[1])
    .slice(0, top)
    .map(([stage, v]) => `${stage} ${fmtMs(v * 1000)} ms`)
    .join(", ");
}
