import { beforeAll, describe, expect, it } from "vitest";
import { join } from "node:path";
import {
  baseMetric,
  definedMetrics,
  deployDir,
  metricsIn,
  needs,
  run,
  yamlOf,
} from "./helpers/deploy.js";

/**
 * deploy/prometheus/alerts.yml: every alert is complete, reads only metrics the code defines
 * (a renamed metric silences an alert without an error), and has a unit test; promtool checks
 * the rules, the config and those tests where installed.
 */

interface Rule {
  alert?: string;
  record?: string;
  expr: string;
  for?: string;
  labels?: Record<string, string>;
  annotations?: Record<string, string>;
}
const rules = yamlOf<{ groups: { name: string; rules: Rule[] }[] }>(
  "deploy/prometheus/alerts.yml",
).groups.flatMap((g) => g.rules);

describe("deploy/prometheus/alerts.yml", () => {
  it.each(rules.map((r) => [r.alert ?? r.record ?? "?", r] as const))(
    "%s has for:, a severity and a summary and description",
    (_name, r) => {
      expect(r.alert).toMatch(/^Reco[A-Za-z]+$/);
      expect(r.for).toMatch(/^\d+[smh]$/);
      expect(["critical", "warning", "info"]).toContain(r.labels?.severity);
      expect(r.annotations?.summary?.length).toBeGreaterThan(10);
      expect(r.annotations?.description?.length).toBeGreaterThan(40);
    },
  );

  it("covers DLQ rate, bad-event ratio, consumer lag, watermark delay and restarts", () => {
    const reads = (alert: string) => metricsIn(rules.find((r) => r.alert === alert)?.expr ?? "");
    expect(reads("RecoDeadLetterRate")).toContain("reco_events_dead_lettered_total");
    expect(reads("RecoPoisonMessages")).toContain("reco_dlq_poison_total");
    expect(reads("RecoBadEventRatio")).toContain("reco_bad_event_ratio_alert");
    expect(reads("RecoConsumerLagHigh")).toContain("reco_stage_consumer_lag");
    expect(reads("RecoStageStalled")).toEqual(
      expect.arrayContaining(["reco_stage_position", "reco_stage_consumer_lag"]),
    );
    expect(reads("RecoEventTimeBehind")).toContain("reco_event_time_progress_ms");
    expect(reads("RecoStageRestarting")).toContain("reco_stage_restarts_total");
  });

  it("reads only metrics that the code defines", () => {
    const defined = definedMetrics();
    const unknown = rules.flatMap((r) => metricsIn(r.expr)).filter((n) => !baseMetric(n, defined));
    expect(unknown).toEqual([]);
  });

  it("unit tests (alerts.test.yml) exercise every alert", () => {
    const tests = yamlOf<{ tests: { alert_rule_test: { alertname: string }[] }[] }>(
      "deploy/prometheus/alerts.test.yml",
    ).tests;
    const tested = new Set(tests.flatMap((t) => t.alert_rule_test.map((a) => a.alertname)));
    expect(rules.map((r) => r.alert).filter((a) => !tested.has(a!))).toEqual([]);
  });

  describe("promtool", () => {
    beforeAll(() => needs("promtool"));
    it("check rules", async () => {
      await run("promtool", ["check", "rules", join(deployDir, "prometheus/alerts.yml")]);
    });
    it("check config (prometheus.yml and the rules it loads)", async () => {
      await run("promtool", ["check", "config", join(deployDir, "prometheus/prometheus.yml")]);
    });
    it("test rules: each alert fires on the series it is meant for, and only then", async () => {
      await run("promtool", ["test", "rules", join(deployDir, "prometheus/alerts.test.yml")]);
    });
  });
});
