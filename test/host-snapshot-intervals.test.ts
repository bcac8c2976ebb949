import { VirtualTimeScheduler } from "rxjs";
import { describe, expect, it } from "vitest";
import { startHostTimers } from "../actors/host/index.js";
import type { HostMsg, StageHandler, StageSpec } from "../actors/host/index.js";

/**
 * A stage may snapshot every few SNAPSHOT_INTERVALs (StageSpec.snapshotIntervals): one whose
 * snapshots rewrite large values and for which no answer waits after a restart.
 */
const spec = (snapshotIntervals?: number): StageSpec<StageHandler> => ({
  stage: "s",
  partition: 0,
  stream: "S",
  subject: "x",
  input: "raw",
  batching: "per-input",
  ...(snapshotIntervals !== undefined ? { snapshotIntervals } : {}),
  create: () => ({ handle: () => undefined }),
});

/** Snapshots asked for over `ms` of virtual time. */
function snapshotsIn(s: StageSpec<StageHandler>, ms: number): number {
  const scheduler = new VirtualTimeScheduler(undefined, ms);
  const sent: HostMsg[] = [];
  const { timers } = startHostTimers({
    id: "s/0",
    spec: s,
    scheduler,
    snapshotIntervalMs: 2000,
    buffered: () => ({ records: 0, since: 0, subjects: 0 }),
    backlogged: () => false,
    oldestWaiting: () => undefined,
    applied: () => 0,
    ticks: false,
    send: (m) => void sent.push(m),
    fail: (err) => {
      throw err;
    },
  });
  scheduler.flush();
  for (const t of timers) t.unsubscribe();
  return sent.filter((m) => m.kind === "snapshot").length;
}

describe("snapshot intervals per stage", () => {
  it("snapshots every SNAPSHOT_INTERVAL by default and every n of them with snapshotIntervals: n", () => {
    expect(snapshotsIn(spec(), 60_000)).toBe(30);
    expect(snapshotsIn(spec(5), 60_000)).toBe(6);
  });
});
