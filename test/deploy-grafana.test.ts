import { describe, expect, it } from "vitest";
import { baseMetric, definedMetrics, metricsIn, read, yamlOf } from "./helpers/deploy.js";

/**
 * deploy/grafana/dashboards/reco-stream.json: Grafana does not run here, so the dashboard is read
 * and its queries checked against the metrics the code defines (a panel on a renamed metric
 * goes blank without an error) and against the provisioned datasource.
 */

interface Target {
  expr?: string;
  refId?: string;
  datasource?: { type?: string; uid?: string };
}
interface Panel {
  id: number;
  type: string;
  title: string;
  datasource?: { type?: string; uid?: string };
  targets?: Target[];
  gridPos: { x: number; y: number; w: number; h: number };
}
const dashboard = JSON.parse(read("deploy/grafana/dashboards/reco-stream.json")) as {
  uid: string;
  title: string;
  panels: Panel[];
};
const queryPanels = dashboard.panels.filter((p) => p.type !== "row");

describe("deploy/grafana/dashboards/reco-stream.json", () => {
  const datasource = yamlOf<{ datasources: { uid: string; type: string }[] }>(
    "deploy/grafana/provisioning/datasources/prometheus.yml",
  ).datasources[0]!;

  it("is a dashboard with a uid, a title and unique panel ids inside the 24-column grid", () => {
    expect(dashboard.uid).toBe("reco-stream");
    expect(dashboard.title).toBeTruthy();
    expect(new Set(dashboard.panels.map((p) => p.id)).size).toBe(dashboard.panels.length);
    for (const p of dashboard.panels) expect(p.gridPos.x + p.gridPos.w).toBeLessThanOrEqual(24);
  });

  it.each(queryPanels.map((p) => [p.title, p] as const))(
    "panel %s has the provisioned datasource and a query",
    (_title, p) => {
      expect(p.datasource).toEqual({ type: datasource.type, uid: datasource.uid });
      expect(p.targets?.length).toBeGreaterThan(0);
      for (const t of p.targets!) {
        expect(t.expr?.trim()).toBeTruthy();
        expect(t.refId).toBeTruthy();
        expect(t.datasource?.uid ?? datasource.uid).toBe(datasource.uid);
      }
    },
  );

  it("queries only metrics that the code defines", () => {
    const defined = definedMetrics();
    const unknown = queryPanels
      .flatMap((p) => p.targets ?? [])
      .flatMap((t) => metricsIn(t.expr ?? ""))
      .filter((n) => !baseMetric(n, defined));
    expect(unknown).toEqual([]);
  });

  it("shows the stage, event, state and gRPC metrics docs/OPERATIONS.md lists", () => {
    const defined = definedMetrics();
    const shown = new Set(
      queryPanels
        .flatMap((p) => p.targets ?? [])
        .flatMap((t) => metricsIn(t.expr ?? ""))
        .map((n) => baseMetric(n, defined)),
    );
    for (const name of [
      "reco_stage_events_in_total",
      "reco_stage_records_out_total",
      "reco_stage_consumer_lag",
      "reco_stage_mailbox_depth",
      "reco_stage_position",
      "reco_event_time_progress_ms",
      "reco_stage_restarts_total",
      "reco_events_dead_lettered_total",
      "reco_dlq_poison_total",
      "reco_events_late_total",
      "reco_bad_event_ratio_alert",
      "reco_stage_snapshot_seconds",
      "reco_stage_state_keys",
      "reco_state_bytes",
      "grpc_requests_total",
      "grpc_request_duration_seconds",
    ])
      expect(shown, name).toContain(name);
  });
});
