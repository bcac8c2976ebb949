import { describe, expect, it } from "vitest";
import { setFlagsFromString } from "node:v8";
import { runInNewContext } from "node:vm";
import { Subject } from "rxjs";
import { TestScheduler } from "rxjs/testing";
import { createStageLogic, type InputBatch } from "../runtime/index.js";
import { collaborativeStage, type RowsRecord } from "../actors/stages/index.js";
import type { ParsedRecord } from "../actors/contract/index.js";
import { ECOMMERCE } from "../actors/sources/index.js";
import { batchMaker, stageContext } from "./helpers/stage.js";
import { recordMaker } from "./helpers/source-stages.js";
import { H, T0, tastes } from "./helpers/collaborative-logic.js";

/**
 * A partition's collaborative stage sends the trainer, at each crossing, a copy of every row that
 * changed since the one before. Once the batch's records are returned the stage lets go of them:
 * a partition that goes quiet after a crossing held that copy (at rest with 1M users, up to
 * every user's row) until its next batch.
 */
describe("a collaborative partition's crossing", () => {
  it("lets go of the rows it sent once the batch is returned", async () => {
    setFlagsFromString("--expose-gc");
    const gc = runInNewContext("gc") as () => void;
    const ts = new TestScheduler((a, b) => expect(a).toEqual(b));
    const { ctx } = stageContext({ preset: ECOMMERCE, retrainMs: H, partition: 0 }, ts);
    const logic = createStageLogic(collaborativeStage, ctx);
    const input = new Subject<InputBatch<ParsedRecord>>();
    const sent: WeakRef<object>[] = [];
    let rowsSent = 0;
    logic.operator(input).subscribe((o) => {
      for (const r of (o as { rows?: RowsRecord[] }).rows ?? [])
        if ("d" in r) {
          sent.push(new WeakRef(r.d));
          rowsSent += r.d.users.length;
        }
    });
    const rec = recordMaker();
    const batch = batchMaker<ParsedRecord>();
    // The events of the first hour, then progress into the second: the hour's crossing.
    input.next(batch(T0 + H + 1, [...tastes(rec), rec("w", "a1", T0 + 10)]));
    expect(rowsSent).toBeGreaterThan(0);
    // A WeakRef holds its target until the job that made it ends.
    await new Promise((r) => setTimeout(r, 0));
    gc();
    expect(sent.filter((w) => w.deref() !== undefined)).toEqual([]);
  });
});
