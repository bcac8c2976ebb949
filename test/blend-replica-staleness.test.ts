import { describe, expect, it } from "vitest";
import { createStageState } from "../state/store.js";
import { createBlendReplica } from "../actors/serving/index.js";

/**
 * The blend replica's staleness (actors/serving/blend-replica.ts) follows the process that feeds it:
 * caught up only while the ingest process that said so is still the one feeding it. Its exit
 * shows in the next answer's staleness, with nothing to wait for in between; a note of "caught
 * up" read after its sender died says nothing.
 */
function replicaFedBy(feeder: () => number | undefined) {
  let t = 1_000;
  const replica = createBlendReplica({
    preset: "ecommerce",
    partitions: 2,
    now: () => t,
    feeder,
  });
  for (const id of replica.instances) replica.adoptBase(id, `read.${id}`, createStageState());
  return { replica, at: (ms: number) => (t = ms) };
}

describe("blend replica staleness", () => {
  it("is 0 while the process that caught it up feeds it, and counts from then once it exits", () => {
    let pid: number | undefined = 101;
    const { replica } = replicaFedBy(() => pid);
    expect(replica.stalenessMs(1_000)).toBeGreaterThan(0);
    replica.noteCaughtUp(2_000);
    expect(replica.stalenessMs(2_500)).toBe(0);
    pid = undefined; // exited: no look at it in between
    expect(replica.stalenessMs(2_000)).toBe(1);
    expect(replica.stalenessMs(2_700)).toBe(700);
    // A note sent before the exit and read after it: still as of 2,000.
    replica.noteCaughtUp(2_800);
    expect(replica.stalenessMs(3_000)).toBe(1_000);
    // A new process: as of 2,000 until it has said it is caught up itself.
    pid = 102;
    expect(replica.stalenessMs(3_100)).toBe(1_100);
    replica.noteCaughtUp(3_200);
    expect(replica.stalenessMs(3_300)).toBe(0);
  });

  it("is behind while changes came after the last note, by at least 1 ms", () => {
    const { replica } = replicaFedBy(() => 7);
    replica.noteCaughtUp(5_000);
    expect(replica.stalenessMs(5_000)).toBe(0);
    replica.apply({ instance: "covisit/0", run: "r.1", base: "read.covisit/0", maps: [] });
    expect(replica.stalenessMs(5_000)).toBe(1);
    expect(replica.stalenessMs(5_040)).toBe(40);
  });
});
