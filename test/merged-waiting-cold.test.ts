import { describe, expect, it } from "vitest";
import { map } from "rxjs";
import { defineStage, port } from "../runtime/index.js";
import { testStateDb } from "./helpers/state-db.js";
import { encodeEnvelope } from "../actors/host/index.js";
import { loadMergedHandler, parseInput } from "../actors/stages/index.js";
import { subjects } from "../actors/contract/index.js";
import type { ParsedRecord } from "../actors/contract/index.js";
import { recordMaker } from "./helpers/source-stages.js";

/**
 * A merged stage keeps the records that wait for the other partitions in a
 * text map, rewritten whole at every snapshot; a restart parsed every delta's copy of it (17 MB of
 * JSON per merged stage with 1M users). On real LevelDB: the lists come back as bytes, and the
 * records waiting at the snapshot are fed, in EVENTS order, once the late partition reports.
 */

/** A stage that records the EVENTS sequences it is fed. */
const fed: number[] = [];
const recorder = defineStage({
  name: "recorder",
  input: port<ParsedRecord>(),
  ports: {},
  create: () => ({
    operator: (batches$) =>
      batches$.pipe(
        map((b) => {
          for (const r of b.records) fed.push(r.s);
          return {};
        }),
      ),
    view: {},
  }),
});

let seq = 0;
const hop = (p: number, upTo: number, recs: ParsedRecord[]) => ({
  seq: ++seq,
  subject: subjects.parse(p),
  data: encodeEnvelope(upTo, 0, recs),
  headers: {},
});

describe("a merged stage's waiting records on LevelDB", () => {
  const dbs = testStateDb("reco-merged-");

  it("load as bytes and are fed in EVENTS order once the late partition reports", async () => {
    const db = await dbs.open();
    const rec = recordMaker();
    const r = Array.from({ length: 6 }, (_, x) => rec(`u${x}`, `i${x}`, 1000 + x));
    const state = await db.instance("recorder", 0).load();
    const h = await loadMergedHandler(recorder, state, {}, parseInput(2));
    // Partition 0 has 1, 3, 5; partition 1 reports nothing yet: everything waits.
    h.handle(hop(0, 6, [r[0]!, r[2]!, r[4]!]), 0);
    expect(fed).toEqual([]);
    await db.instance("recorder", 0).write(state);

    const loaded = await db.instance("recorder", 0).load();
    expect(loaded.coldBytes()).toBeGreaterThan(0);
    const h2 = await loadMergedHandler(recorder, loaded, {}, parseInput(2));
    h2.handle(hop(1, 6, [r[1]!, r[3]!, r[5]!]), 0);
    expect(fed).toEqual([1, 2, 3, 4, 5, 6]);
  });
});
