import type { RecoBackend, Recommendations } from "../actors/contract/index.js";
import type { HealthCheck } from "./health.js";

/**
 * Serving outlives its inputs (DESIGN §4): while NATS hangs or is unreachable, or the disk is full,
 * the answers still come from the state in memory, and say so. Each answer of `backend` gets,
 * while `inputs` (the NATS watch, the state store's writes) reports a problem, the time since the problem began as its staleness and a status
 * naming it, beside the watermark it reflects.
 */
export function withInputStaleness(
  backend: RecoBackend,
  inputs: HealthCheck,
  now: () => number = Date.now,
): RecoBackend {
  const mark = (r: Recommendations): Recommendations => {
    const t = now();
    const problems = inputs(t);
    if (problems.length === 0) return r;
    const since = Math.min(...problems.map((p) => p.since));
    const stale =
      `stale since ${new Date(since).toISOString()} (${problems[0]!.reason}): ` +
      "answered from memory as of the watermark";
    return {
      ...r,
      stalenessMs: Math.max(r.stalenessMs ?? 0, Math.max(1, t - since)),
      statusMessage: r.statusMessage === "" ? stale : `${r.statusMessage}; ${stale}`,
    };
  };
  const recommendNow = backend.recommendNow;
  return {
    ...backend,
    async getRecommendations(userId, n, signal, options) {
      return mark(await backend.getRecommendations(userId, n, signal, options));
    },
    ...(recommendNow
      ? {
          recommendNow(userId: string, n: number, options?: Parameters<typeof recommendNow>[2]) {
            const r = recommendNow.call(backend, userId, n, options);
            return r === undefined ? r : mark(r);
          },
        }
      : {}),
  };
}
