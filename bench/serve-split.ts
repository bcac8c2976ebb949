/**
 * Step 4 with BENCH_SERVE_PROCESS=1: the app as `reco start` runs it with SERVE_PROCESS=1 (not the
 * default, bin/serve-app.ts): this process is the serving one (gRPC, /metrics, replicas; the echo
 * server beside it, so "echo in the same process" is the serving loop's baseline), the stages run
 * in its ingest child at INGEST_NICE with parse below it. The step reads the same figures through
 * this handle as from the one-process app.
 */
import type { Logger } from "pino";
import type { AppConfig } from "../bin/config.js";
import { loadRoleConfig } from "../bin/role-config.js";
import { startServingApp } from "../bin/serve-app.js";
import type { JsonMetrics } from "../bin/parse-process.js";
import { scrape, sum } from "./util.js";

export interface SplitServing {
  readonly grpcPort: number;
  readonly metricsPort: number;
  /** The ingest child's metrics (merged with its parse child's). */
  readonly ingest: { childMetrics(): Promise<JsonMetrics>; pid(): number | undefined };
  /** Parse's position, from the merged /metrics. */
  parsed(): Promise<number>;
  stop(): Promise<void>;
}

/** Starts the split app and waits until every stage has caught up with `lastSeq` (or `timeoutMs`). */
export async function startSplitServing(
  cfg: AppConfig,
  log: Logger,
  lastSeq: number,
  o: { settleMs: number; timeoutMs: number },
): Promise<{ app: SplitServing; timedOut: boolean }> {
  const served = await startServingApp(cfg, loadRoleConfig({}), log);
  const parsed = async () =>
    sum(await scrape(served.metricsPort), "reco_stage_position", { stage: "parse" });
  const t0 = performance.now();
  let last = -1;
  let lastMove = t0;
  let timedOut = false;
  for (;;) {
    const m = await scrape(served.metricsPort);
    const positions = sum(m, "reco_stage_position");
    const now = performance.now();
    if (positions !== last) {
      last = positions;
      lastMove = now;
    } else if (
      sum(m, "reco_stage_position", { stage: "parse" }) >= lastSeq &&
      now - lastMove >= o.settleMs &&
      m.filter((s) => s.name === "reco_stage_consumer_lag").every((s) => s.value === 0)
    )
      break;
    if (now - t0 > o.timeoutMs) {
      timedOut = true;
      break;
    }
    await new Promise((r) => setTimeout(r, 250));
  }
  return {
    app: {
      grpcPort: served.grpcPort,
      metricsPort: served.metricsPort,
      ingest: served.ingest,
      parsed,
      stop: () => served.stop(),
    },
    timedOut,
  };
}
