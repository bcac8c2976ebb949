import { describe, expect, it } from "vitest";
import { SETTINGS } from "../bin/config.js";
import { KNOWN_ENVS, SETTING_ENVS, metricsIn } from "./helpers/deploy.js";

/**
 * What the deploy/ checks read the files with (test/helpers/deploy.ts): a metric name they miss
 * or a setting they do not know would let a wrong file through every other deploy test.
 */

describe("metricsIn (the PromQL reader these checks use)", () => {
  it("finds metric names and skips functions, labels, keywords and strings", () => {
    expect(
      metricsIn(
        'histogram_quantile(0.99, sum by (le, stage) (rate(reco_x_bucket{method="a_b"}[$__rate_interval]))) > 1 and on (stage) max(up) == 0 or time() - reco_y / 1000',
      ),
    ).toEqual(["reco_x_bucket", "up", "reco_y"]);
  });
});

describe("the settings these checks accept", () => {
  it("are the env names of SETTINGS, read from bin/config-settings.ts, and the role settings", () => {
    expect([...SETTING_ENVS].sort()).toEqual(
      Object.values(SETTINGS)
        .map((s) => s.env)
        .sort(),
    );
    for (const name of ["NATS_URL", "DATA_DIR", "GRPC_PORT", "METRICS_PORT", "PARTITIONS"])
      expect(KNOWN_ENVS).toContain(name);
    expect(KNOWN_ENVS).toContain("WORKER_ID");
  });
});
