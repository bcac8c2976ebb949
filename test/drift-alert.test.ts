import { execFile } from "node:child_process";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { readFileSync } from "node:fs";
import { promisify } from "node:util";
import { parse } from "yaml";
import { Registry } from "prom-client";
import { afterAll, describe, expect, it } from "vitest";
import { readLog, type LogEvent } from "../bin/eval/log.js";
import { encodeEnvelope } from "../actors/host/index.js";
import type { DriftHandler } from "../actors/stages/index.js";
import { partitionOf } from "../actors/contract/index.js";
import { qualityWiring } from "../actors/plan/index.js";
import { parsePrometheusText } from "../connectors/http/api-pipeline.js";
import { createStageState } from "../state/index.js";
import { needTool } from "./helpers/tools.js";

/**
 * A replayed log with a category shift injected into its last hour fires the
 * drift alert, the same log without it does not. The REES46 sample goes through the drift stages
 * (one per partition, the engine's handlers fed hop envelopes as on NATS) and the wiring's
 * gauges; each minute of event time the registry's /metrics text is read, and those values are
 * the series of a promtool rule test of deploy/prometheus/alerts.yml (a minute of event time per
 * minute of rule time: a replay is the traffic of those hours, only faster).
 */
const root = resolve(import.meta.dirname, "..");
const LOG = join(root, "../shared/data/rees46/2019-Oct-head.csv");
const P = 4;
const run = promisify(execFile);

interface Scrape {
  psi: Record<string, number>;
  recent: number;
  reference: number;
}

async function replay(events: readonly LogEvent[]): Promise<Scrape[]> {
  const registry = new Registry();
  const handlers = new Map<string, DriftHandler>();
  let clock = 0;
  qualityWiring(
    { partitions: P, preset: "ecommerce" },
    {
      stream: "HOPS",
      registry,
      live: (id) => handlers.get(id),
      run: (spec) =>
        void handlers.set(
          `drift/${spec.partition}`,
          spec.create(createStageState(), undefined as never) as DriftHandler,
        ),
      now: () => (clock += 1000), // each scrape a second later: no memo between them
    },
  );
  const seqs = new Array<number>(P).fill(0);
  const scrapes: Scrape[] = [];
  let x = 0;
  let progress = -1;
  for (let minute = events[0]!.ts; x < events.length; minute += 60_000) {
    const byPartition = Array.from({ length: P }, () => [] as unknown[]);
    while (x < events.length && events[x]!.ts < minute + 60_000) {
      const e = events[x++]!;
      byPartition[partitionOf(e.u, P)]!.push({ ...e, s: x, wb: progress });
      progress = Math.max(progress, e.ts);
    }
    // Every partition gets the progress (parse's broadcast), with or without records.
    byPartition.forEach((recs, p) => {
      const seq = ++seqs[p]!;
      handlers.get(`drift/${p}`)!.handle(
        {
          seq,
          subject: `reco.parse.${p}`,
          data: encodeEnvelope(seq, progress, recs),
          headers: {},
        },
        seq - 1,
      );
    });
    const samples = parsePrometheusText(await registry.metrics());
    const value = (name: string, label: string, v: string) =>
      samples.find((s) => s.name === name && s.labels[label] === v)!.value;
    scrapes.push({
      psi: Object.fromEntries(
        ["category", "event_type", "item_popularity"].map((d) => [
          d,
          value("reco_drift_psi", "dimension", d),
        ]),
      ),
      recent: value("reco_drift_events", "window", "recent"),
      reference: value("reco_drift_events", "window", "reference"),
    });
  }
  return scrapes;
}

/** The rule as deploy/prometheus/alerts.yml has it. */
function driftRule(): { annotations: { description: string } } {
  const doc = parse(readFileSync(join(root, "deploy/prometheus/alerts.yml"), "utf8")) as {
    groups: { rules: { alert?: string; annotations: { description: string } }[] }[];
  };
  return doc.groups.flatMap((g) => g.rules).find((r) => r.alert === "RecoTrafficDrift")!;
}

/** Prometheus's `humanize` for 1 <= v < 1000 (Go's %.4g: four significant digits, no trailing 0s). */
const humanize = (v: number) => String(Number(Number(v.toFixed(4)).toPrecision(4)));

/** A promtool test: the scraped series, and the alert expected (or not) at the last minute. */
function ruleTest(name: string, scrapes: Scrape[], fires: boolean): string {
  const series = (labels: string, values: number[]) =>
    `      - series: 'reco_drift_${labels}'\n        values: "${values.map((v) => +v.toFixed(4)).join(" ")}"\n`;
  const inst = 'job="reco-worker",instance="w1"';
  const psi = (d: string) =>
    series(
      `psi{${inst},dimension="${d}"}`,
      scrapes.map((s) => s.psi[d]!),
    );
  return (
    `  - name: ${name}\n    interval: 1m\n    input_series:\n` +
    psi("category") +
    psi("event_type") +
    psi("item_popularity") +
    series(
      `events{${inst},window="recent"}`,
      scrapes.map((s) => s.recent),
    ) +
    series(
      `events{${inst},window="reference"}`,
      scrapes.map((s) => s.reference),
    ) +
    `    alert_rule_test:\n      - eval_time: ${scrapes.length - 1}m\n        alertname: RecoTrafficDrift\n` +
    (fires
      ? `        exp_alerts:\n          - exp_labels: { severity: warning, dimension: category }\n` +
        `            exp_annotations:\n` +
        `              summary: ${JSON.stringify(`The category mix drifted (PSI ${humanize(scrapes[scrapes.length - 1]!.psi.category!)})`)}\n` +
        `              description: ${JSON.stringify(driftRule().annotations.description.replace("{{ $labels.dimension }}", "category"))}\n`
      : `        exp_alerts: []\n`)
  );
}

describe("drift alert on a replayed log", () => {
  let dir = "";
  afterAll(async () => {
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  it("fires on a category shift injected into the last hour, and not without it", async () => {
    needTool("promtool");
    const { events } = await readLog(LOG);
    const end = events[events.length - 1]!.ts;
    // Every other event of the last hour moves to one category (a producer gone wrong, a campaign).
    const shifted = events.map((e, x) =>
      e.ts > end - 3_600_000 && x % 2 === 0 ? { ...e, c: "kids" } : e,
    );
    const plain = await replay(events);
    const shift = await replay(shifted);
    const last = (s: Scrape[]) => s[s.length - 1]!;
    // What the gauges said at the end (docs/QUALITY.md quotes these).
    expect(last(plain).psi.category).toBeLessThan(0.1);
    expect(last(shift).psi.category).toBeGreaterThan(1);
    expect(last(shift).recent).toBe(last(plain).recent);
    expect(last(shift).recent).toBeGreaterThan(500);

    dir = await mkdtemp(join(tmpdir(), "drift-alert-"));
    const file = join(dir, "drift.test.yml");
    await writeFile(
      file,
      `rule_files:\n  - ${join(root, "deploy/prometheus/alerts.yml")}\nevaluation_interval: 1m\ntests:\n` +
        ruleTest("REES46 sample with a category shift in its last hour", shift, true) +
        ruleTest("REES46 sample as it is", plain, false),
    );
    const r: { stdout?: string; stderr?: string } = await run("promtool", [
      "test",
      "rules",
      file,
    ]).catch((err: { stdout?: string; stderr?: string }) => err);
    const outText = `${r.stdout ?? ""}${r.stderr ?? ""}`;
    expect(outText, outText).toContain("SUCCESS");
  }, 60_000);
});
