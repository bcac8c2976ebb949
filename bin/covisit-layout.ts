import type { NatsConnection } from "nats";
import { covisitLayout, LayoutMismatchError } from "../connectors/nats/engine-layout.js";
import { whenJetStreamAnswers } from "../connectors/nats/topology.js";
import { ConfigError, type AppConfig } from "./config.js";
import { newCovisitPartitions } from "./pipeline/config.js";

/**
 * COVISIT_PARTITIONS for this deployment (connectors/nats/engine-layout.ts): recorded by its
 * first process; a setting that differs fails the start as a bad setting does.
 */
export async function deploymentCovisit(nc: NatsConnection, cfg: AppConfig): Promise<number> {
  try {
    const layout = await whenJetStreamAnswers(() =>
      covisitLayout(nc, {
        ...(cfg.pipeline.covisitPartitions !== undefined
          ? { setting: cfg.pipeline.covisitPartitions }
          : {}),
        fresh: newCovisitPartitions(cfg.pipeline.partitions),
        replicas: cfg.pipeline.replicas,
      }),
    );
    return layout.partitions;
  } catch (err) {
    if (err instanceof LayoutMismatchError) throw new ConfigError(err.message);
    throw err;
  }
}
