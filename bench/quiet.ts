import { scrape, selfCpuSeconds, sleep, sum } from "./util.js";

export interface QuietResult {
  /** How long it waited, ms. */
  waitedMs: number;
  /** False when `maxMs` ran out first. */
  quiet: boolean;
  /** This process's CPU share of one core in the last window (0.12: 12%). */
  cpuShare: number;
  /** Events fed to the collaborative stage and the input point of its served model. */
  fed: number;
  modelAt: number;
}

/**
 * Waits until the app running in this process is idle, so an idle figure (bench step 4) does not
 * measure the work an ingest leaves behind: chiefly the ALS training the idle input starts
 * (IDLE_TIMEOUT_MS after the last event), whose new model also makes every kept answer of the
 * blend memo stale. Idle means: the served implicit model covers every event fed
 * to the collaborative stage (RANKER=blend; without the gauge, not checked), and this process
 * (every thread: a training worker too) used at most `maxCpuShare` of a core in each of two
 * consecutive 1 s windows.
 */
export async function waitAppQuiet(o: {
  metricsPort: number;
  maxMs: number;
  maxCpuShare?: number;
}): Promise<QuietResult> {
  const t0 = performance.now();
  const maxShare = o.maxCpuShare ?? 0.15;
  let calm = 0;
  for (;;) {
    const c0 = selfCpuSeconds();
    const w0 = performance.now();
    await sleep(1000);
    const cpuShare = (selfCpuSeconds() - c0) / ((performance.now() - w0) / 1000);
    const m = await scrape(o.metricsPort);
    const has = m.some((s) => s.name === "reco_recommender");
    const fed = sum(m, "reco_recommender", { name: "events" });
    const modelAt = sum(m, "reco_recommender", { name: "model_point" });
    const modelDone = !has || modelAt >= fed;
    calm = modelDone && cpuShare <= maxShare ? calm + 1 : 0;
    const waitedMs = performance.now() - t0;
    if (calm >= 2 || waitedMs >= o.maxMs)
      return { waitedMs, quiet: calm >= 2, cpuShare, fed, modelAt };
  }
}
