import { describe, expect, it } from "vitest";
import { map } from "rxjs";
import { defineStage, port } from "../runtime/index.js";
import { encodeEnvelope } from "../actors/host/index.js";
import { loadMergedHandler, pairsInput, parseInput } from "../actors/stages/index.js";
import { subjects } from "../actors/contract/index.js";
import type { PairRecord, ParsedRecord } from "../actors/contract/index.js";
import { createStageState } from "../state/stage-state.js";
import { recordMaker } from "./helpers/source-stages.js";

/**
 * A merged stage (merged-input.ts) reads several subjects' hops through one consumer. A hop of a
 * subject stored after the subject's next one (its publish retried after a timeout, or lost and
 * sent again by its producer restarted from a snapshot, while the next hop was stored) must not
 * lose its records: they are below the subject's newest record, and were dropped as already
 * taken. Such a hop now waits for the one before it, as a single input's hops do (hop-order.ts),
 * and the stage's snapshot stays before what waits. (Seen as co-visitation stuck short of the
 * events after a NATS server hung and the history stages restarted.)
 */

const fed: number[] = [];
const recorder = defineStage({
  name: "recorder",
  input: port<{ s: number; p?: number }>(),
  ports: {},
  create: () => ({
    operator: (batches$) =>
      batches$.pipe(
        map((b) => {
          // Records, not the marks that only say how far a subject is complete.
          for (const r of b.records) if (r.p === undefined) fed.push(r.s);
          return {};
        }),
      ),
    view: {},
  }),
});

type Msg = { seq: number; subject: string; data: Uint8Array; headers: Record<string, never> };

describe("a merged stage's hops stored out of their order", () => {
  const rec = recordMaker();
  const parsed = (s: number): ParsedRecord => ({ ...rec(`u${s}`, `i${s}`, 1000 + s, "view"), s });
  let seq = 0;
  const hop = (subject: string, prev: number, upTo: number, recs: unknown[]): Msg => ({
    seq: ++seq,
    subject,
    data: encodeEnvelope(upTo, 900 + upTo, recs, prev === 0 ? undefined : prev),
    headers: {},
  });

  it("feeds a hop stored after its subject's next one, in EVENTS order", async () => {
    fed.length = 0;
    const state = createStageState();
    const h = await loadMergedHandler(recorder, state, {}, parseInput(2));
    const [a, b] = [subjects.parse(0), subjects.parse(1)];
    h.handle(hop(a, 0, 3, [parsed(1), parsed(3)]), 0);
    h.handle(hop(b, 0, 9, [parsed(2), parsed(4), parsed(6), parsed(7), parsed(9)]), 0);
    // a's hop (3, 6] comes after (6, 9].
    const late = hop(a, 3, 6, [parsed(5)]);
    h.handle(hop(a, 6, 9, [parsed(8)]), 0);
    expect(h.heldFrom?.()).toBe(late.seq + 1);
    // What it waits for, for the host's bound on how long a hop may wait.
    expect(h.heldLongest?.()).toMatchObject({ subject: a, prev: 6, applied: 3 });
    h.handle(late, 0);
    expect(fed).toEqual([1, 2, 3, 4, 5, 6, 7, 8, 9]);
    expect(h.heldFrom?.()).toBeUndefined();
    expect(h.heldLongest?.()).toBeUndefined();
  });

  it("takes the hops of a producer restarted from its snapshot, after newer ones were stored", async () => {
    fed.length = 0;
    const state = createStageState();
    const h = await loadMergedHandler(recorder, state, {}, pairsInput(0, 2));
    const [a, b] = [subjects.pairs(0, 0), subjects.pairs(0, 1)];
    const pair = (s: number): PairRecord => ({ s, i: `i${s}`, ts: 1000 + s, n: [], w: [] });
    const mark = (s: number): PairRecord => ({ s, i: "", ts: -1, n: [], w: [], p: 900 + s });
    // The pairs producers' own input positions (prev, upTo] are 10, 20, 30 apart from EVENTS'.
    h.handle(hop(a, 0, 10, [pair(1), mark(3)]), 0);
    h.handle(hop(b, 0, 30, [pair(2), pair(4), pair(6), mark(9)]), 0);
    // a's (10, 20] was lost; its (20, 30] was stored.
    h.handle(hop(a, 20, 30, [pair(8), mark(9)]), 0);
    // The producer restarted from its snapshot at 10 and sends (10, 30] again.
    h.handle(hop(a, 10, 30, [pair(5), pair(8), mark(9)]), 0);
    expect(fed).toEqual([1, 2, 4, 5, 6, 8]);
    expect(h.heldFrom?.()).toBeUndefined();
  });
});
