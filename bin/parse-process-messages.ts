import type { MetricObjectWithValues, MetricValue } from "prom-client";
import type { AppConfig } from "./config.js";
import type { HealthProblem } from "./health.js";
import type { ChangeChunk } from "../actors/serving/index.js";

/**
 * What a parent and its child (bin/parse-child.ts, bin/ingest-child.ts) say over the IPC channel:
 * both sides import these shapes, none of the code that supervises the child.
 */

/** Messages parent → child. */
export type ToParseChild =
  | {
      type: "start";
      cfg: AppConfig;
      natsUrl: string;
      /**
       * The ingest child: the source stages' snapshots the parent's replica read (a token per
       * instance, bin/serve-app.ts), whose first runs send no dump (blend-changes.ts).
       */
      replicaBases?: Record<string, string>;
    }
  | { type: "metrics"; id: number }
  | { type: "stop" };

export type JsonMetrics = MetricObjectWithValues<MetricValue<string>>[];

/** Messages child → parent. */
export type FromParseChild =
  | { type: "ready" }
  /**
   * Parse's last processed EVENTS sequence and every stage instance's input position, sent when
   * one moves (at most every 100 ms).
   */
  | { type: "position"; seq: number; stages?: Record<string, number> }
  | { type: "metrics"; id: number; metrics: JsonMetrics }
  /** The child's own health problems (NATS, parse failing, its state store), every second. */
  | { type: "health"; problems: HealthProblem[] }
  /** The child cannot run (its state store is corrupt): restarting it will not help. */
  | { type: "fatal"; message: string }
  /** The ingest child's blend source changes, for the serving process's replica. */
  | { type: "blend"; chunk: ChangeChunk }
  /** The ingest child has no blend change left to send (now: the replica is caught up). */
  | { type: "blend-idle" };
