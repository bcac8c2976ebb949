import { afterAll, describe, expect, it } from "vitest";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { openStateDb } from "../state/store.js";
import { SEP } from "../state/stage-state.js";
import {
  carrySnapshotsOver,
  userPathBefore,
  userPathInstances,
  userPathPlanFile,
} from "../bin/pipeline/plan-snapshots.js";
import { startTierOfStage } from "../bin/pipeline/units.js";

/**
 * A start whose plan differs from the last one's carries the user path's snapshots over: here the
 * chain of all four stages that earlier starts ran becomes the chain up to interest-ranking and
 * popularity-join on its own (it starts first at a restart, with the serving tier).
 */
describe("the user path's snapshots when popularity-join leaves the chain", () => {
  const dirs: string[] = [];
  afterAll(async () => {
    for (const d of dirs) await rm(d, { recursive: true, force: true });
  });
  const OLD = "watermark+window+interest-ranking+popularity-join";

  it("cuts the four stages' chain into the chain up to interest-ranking and popularity-join", async () => {
    const dir = await mkdtemp(join(tmpdir(), "reco-plan-"));
    dirs.push(dir);
    const db = await openStateDb(join(dir, "state"));
    await db.instance(OLD, 1).importRaw({
      meta: {
        seq: 500,
        upTo: 500,
        wm: 1234,
        stats: { "window/in": 7, "popularity-join/in": 3 },
        sent: { "reco.interest-ranking.1": 480 },
        "window/progress": 1234,
        "popularity-join/progress": 1200,
      },
      entries: [
        [`window/cells${SEP}k1`, [1, 2]],
        [`interest-ranking/cells${SEP}u1`, [3]],
        [`popularity-join/profiles${SEP}u1`, "books"],
      ],
    });
    await writeFile(userPathPlanFile(dir), JSON.stringify([OLD]));
    const wanted = userPathInstances(true, () => "main", startTierOfStage).map((i) => i.stage);
    expect(wanted).toEqual(["watermark+window+interest-ranking", "popularity-join"]);

    await carrySnapshotsOver(db, dir, wanted, 2);
    const head = await db.instance(wanted[0]!, 1).exportRaw();
    const tail = await db.instance("popularity-join", 1).exportRaw();
    // The chain keeps the input position; its members' state and counts stay theirs.
    expect(head.meta.seq).toBe(500);
    expect(head.entries.map(([k]) => k).sort()).toEqual(
      [`interest-ranking/cells${SEP}u1`, `window/cells${SEP}k1`].sort(),
    );
    expect(head.meta["window/progress"]).toBe(1234);
    // popularity-join reads the chain's published hops from their start: every hop up to the
    // chain's position is dropped as processed.
    expect(tail.meta.upTo).toBe(500);
    expect(Number(tail.meta.seq ?? 0)).toBe(0);
    expect(tail.entries).toEqual([[`profiles${SEP}u1`, "books"]]);
    expect(tail.meta.progress).toBe(1200);
    expect(tail.meta.stats).toEqual({ in: 3 });
    // The old instance is gone, and the plan file names the new one.
    expect((await db.instance(OLD, 1).exportRaw()).entries).toEqual([]);
    expect(await userPathBefore(dir)).toEqual(wanted);
    await db.close();
  });
});
