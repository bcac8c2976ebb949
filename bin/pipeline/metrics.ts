import { Gauge } from "prom-client";
import type { Supervisor } from "../../runtime/index.js";
import type { HostDeps } from "../../actors/host/index.js";
import type { Metrics } from "../../connectors/http/metrics.js";
import type { Instances } from "./units.js";
import { isChainHandler, memberCounts, membersOfStage } from "../../actors/host/index.js";

/**
 * The stage instances' gauges (read from the live instances at each scrape) and the supervisor's
 * failures and restarts, in Prometheus.
 */
export function stageGauges(
  metrics: Metrics,
  instances: Instances,
  supervisor: Supervisor,
  log?: (obj: object, msg: string) => void,
): void {
  const label = (id: string) => {
    const [stage = id, partition = "0"] = id.split("/");
    return { stage, partition };
  };
  new Gauge({
    name: "reco_stage_position",
    help: "Last input stream sequence processed by a stage instance",
    labelNames: ["stage", "partition"] as const,
    registers: [metrics.registry],
    collect() {
      for (const [id, inst] of instances) this.set(label(id), inst.position());
    },
  });
  new Gauge({
    name: "reco_stage_restored_position",
    help: "Input stream sequence a stage instance's snapshot restored when it last started: it replays from the next one",
    labelNames: ["stage", "partition"] as const,
    registers: [metrics.registry],
    collect() {
      for (const [id, inst] of instances) {
        const at = inst.restoredPosition();
        if (at >= 0) this.set(label(id), at);
      }
    },
  });
  new Gauge({
    name: "reco_stage_event_time_ms",
    help: "Event-time progress (epoch ms) a stage instance has reached (stamped on its outputs)",
    labelNames: ["stage", "partition"] as const,
    registers: [metrics.registry],
    collect() {
      for (const [id, inst] of instances) {
        const p = inst.progress();
        if (p > 0) this.set(label(id), p);
      }
    },
  });
  new Gauge({
    name: "reco_stage_state_keys",
    help: "Keys of per-key state a stage instance holds (bounded by open windows and horizons, not by events)",
    labelNames: ["stage", "partition"] as const,
    registers: [metrics.registry],
    collect() {
      for (const [id, inst] of instances) {
        // A chain's under each member's stage, as its members' own maps hold them.
        const h = inst.handler();
        if (isChainHandler(h)) {
          const { partition } = label(id);
          for (const [stage, n] of h.memberKeys()) this.set({ stage, partition }, n);
        } else this.set(label(id), inst.stateKeys());
      }
    },
  });
  new Gauge({
    name: "reco_stage_state_cold_bytes",
    help: "Bytes a stage instance's state holds for its cold keys: their stored records (off the V8 heap: external memory) and the indexes that find them",
    labelNames: ["stage", "partition"] as const,
    registers: [metrics.registry],
    collect() {
      for (const [id, inst] of instances) this.set(label(id), inst.stateColdBytes());
    },
  });
  new Gauge({
    name: "reco_stage_count",
    help: "Counts kept in a stage instance's snapshot (exact across restarts): accepted, duplicate, dead_letter[:reason], late",
    labelNames: ["stage", "partition", "name"] as const,
    registers: [metrics.registry],
    collect() {
      // A chain's counts under each member's stage: late and dead letters read by stage.
      for (const [id, inst] of instances) {
        const { partition } = label(id);
        for (const [stage, counts] of memberCounts(id.slice(0, id.indexOf("/")), inst.stats()))
          for (const [name, v] of Object.entries(counts)) this.set({ stage, partition, name }, v);
      }
    },
  });
  supervisor.events$.subscribe((e) => {
    const [stage = e.childId, partition = ""] = e.childId.split("/");
    if (e.type === "child-failed") {
      metrics.errors.inc({ stage, partition });
      log?.({ child: e.childId, err: String(e.error) }, "stage failed");
    }
    if (e.type === "child-restarted") metrics.restarts.inc({ stage, partition });
  });
}

/** What a stage host reports, into Prometheus. */
export function hostMetrics(
  m: Metrics,
  stage: string,
  partition: number,
): NonNullable<HostDeps["metrics"]> {
  const l = (stage: string, partition: number) => ({ stage, partition: String(partition) });
  // Every series from the start, at 0: a counter that first appears at its first increment
  // makes rate() and increase() queries empty or wrong.
  m.initStage(stage, partition);
  // A chain's members have series of their own (busy time, inputs), at 0 from the start too.
  const members = membersOfStage(stage);
  if (members.length > 1) for (const member of members) m.initStage(member, partition);
  return {
    input: (s, p, n, records) => {
      m.messagesIn.inc(l(s, p), n);
      m.eventsIn.inc(l(s, p), records);
    },
    output: (s, p, n) => m.eventsOut.inc(l(s, p), n),
    busy: (s, p, secs) => m.busySeconds.inc(l(s, p), secs),
    longest: (s, p, secs) => m.busyLongest.set(l(s, p), secs),
    lag: (s, p, n) => m.lag.set(l(s, p), n),
    mailbox: (s, p, n) => m.mailbox.set(l(s, p), n),
    snapshot: (s, p, secs, keys) => {
      m.snapshotSeconds.observe(l(s, p), secs);
      m.snapshotKeys.inc(l(s, p), keys);
    },
    restore: (s, p, state, handler) => {
      m.restoreSeconds.set({ ...l(s, p), part: "state" }, state);
      m.restoreSeconds.set({ ...l(s, p), part: "handler" }, handler);
    },
    poison: (s, p) => m.poison.inc(l(s, p)),
    duplicateBatch: (s, p) => m.duplicateBatches.inc(l(s, p)),
  };
}
