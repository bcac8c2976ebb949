import { afterEach, describe, expect, it } from "vitest";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import fc from "fast-check";
import { createStageState, openStateDb, type StageStateInternal } from "../state/store.js";
import type { InputMessage, StageOutput } from "../actors/host/index.js";
import type { ParseOptions } from "../actors/stages/index.js";
import { createParseHandler } from "../actors/plan/index.js";
import { HOUR, MINUTE } from "../actors/contract/index.js";

/**
 * What parse remembers must not depend on where snapshots and restarts
 * fell. Regression: the seen-id map was expired "from the front", in Map insertion order, but a
 * map reloaded from LevelDB comes back in key order, so after a restart other ids were forgotten
 * than in a run without one, and a duplicate could be accepted (or a fresh event dropped).
 */

const enc = new TextEncoder();
const T0 = Date.UTC(2024, 0, 1, 10, 0, 0);

// `as`: the host's StageOutput may or may not have `count` yet (another change in flight).
const quietOutput = {
  emit: () => undefined,
  touch: () => undefined,
  setProgress: () => undefined,
  raw: () => undefined,
  kvPut: () => undefined,
  count: () => undefined,
} as StageOutput;

type Decision = "accepted" | "duplicate" | `bad:${string}`;

/** A parse handler over `state` that reports the decision of each message it handles. */
function decider(
  state: StageStateInternal,
  opts: Pick<ParseOptions, "dedupeMaxIds" | "dedupeHorizonMs">,
) {
  let last: Decision | undefined;
  const h = createParseHandler(state, quietOutput, {
    partitions: 2,
    preset: "ecommerce",
    maxEventBytes: 64 * 1024,
    broadcastEveryMs: 1000,
    clock: () => 0,
    counters: {
      accepted: () => void (last = "accepted"),
      duplicate: () => void (last = "duplicate"),
      bad: (reason) => void (last = `bad:${reason}`),
    },
    ...opts,
  });
  return (msg: InputMessage): Decision => {
    last = undefined;
    h.handle(msg, 0);
    if (last === undefined) throw new Error(`no decision for message ${msg.seq}`);
    return last;
  };
}

/** What a LevelDB sublevel holds: snapshots applied one after the other. */
function createFakeDisk() {
  const entries = new Map<string, unknown>();
  let meta: Record<string, unknown> = {};
  return {
    /** As SnapshotStore.write: dirty keys and the metadata. */
    write(state: StageStateInternal) {
      const { puts, dels } = state.takeDirty();
      for (const [k, v] of puts) entries.set(k, structuredClone(v));
      for (const k of dels) entries.delete(k);
      meta = structuredClone(state.meta);
    },
    /** As SnapshotStore.load: entries come back in key order, not in the order they were set. */
    load(): StageStateInternal {
      const state = createStageState();
      state.meta = structuredClone(meta);
      for (const k of [...entries.keys()].sort())
        state.loadEntry(k, structuredClone(entries.get(k)));
      return state;
    },
  };
}

function msg(seq: number, id: string, ts: number): InputMessage {
  const event = { event_id: id, event_type: "view", event_ts: ts, user_id: "u", item_id: "i" };
  return { seq, subject: "events.view", data: enc.encode(JSON.stringify(event)), headers: {} };
}

/** Ids whose key order is the reverse of their arrival order: the worst case for the old code. */
const idOf = (n: number) =>
  `00000000-0000-4000-8000-${(0xffffff - n).toString(16).padStart(12, "0")}`;

/** Decisions for `msgs`, restarting from the last snapshot after each index in `restartsAfter`. */
function runWithRestarts(
  msgs: InputMessage[],
  opts: Pick<ParseOptions, "dedupeMaxIds" | "dedupeHorizonMs">,
  snapshotsAfter: ReadonlySet<number>,
  restartsAfter: ReadonlySet<number>,
): Decision[] {
  const disk = createFakeDisk();
  let state = disk.load();
  let decide = decider(state, opts);
  const out: Decision[] = [];
  let snapshotAt = -1;
  for (let k = 0; k < msgs.length; k++) {
    out[k] = decide(msgs[k]!);
    if (snapshotsAfter.has(k)) {
      disk.write(state);
      snapshotAt = k;
    }
    if (restartsAfter.has(k)) {
      // A crash: everything after the snapshot is lost and replayed, as the stage host does.
      state = disk.load();
      decide = decider(state, opts);
      for (let j = snapshotAt + 1; j <= k; j++) out[j] = decide(msgs[j]!);
    }
  }
  return out;
}

describe("parse dedupe memory across a reload from LevelDB", () => {
  it("forgets the same ids after a reload as without one when the size bound is hit", () => {
    // Three ids arrive in event-time order; their keys sort the other way round.
    const opts = { dedupeMaxIds: 2, dedupeHorizonMs: 24 * HOUR };
    const msgs = [
      msg(1, idOf(1), T0),
      msg(2, idOf(2), T0 + MINUTE),
      // restart here
      msg(3, idOf(3), T0 + 2 * MINUTE), // three ids > 2: the oldest (1) must go, not the key-first (3)
      msg(4, idOf(2), T0 + 3 * MINUTE), // still remembered: a duplicate
      msg(5, idOf(3), T0 + 4 * MINUTE), // still remembered: a duplicate
    ];
    const plain = runWithRestarts(msgs, opts, new Set(), new Set());
    expect(plain).toEqual(["accepted", "accepted", "accepted", "duplicate", "duplicate"]);
    expect(runWithRestarts(msgs, opts, new Set([1]), new Set([1]))).toEqual(plain);
  });

  it("forgets the same ids after a reload as without one when the time limit passes", () => {
    const opts = { dedupeMaxIds: 100, dedupeHorizonMs: HOUR };
    // An id is remembered from the later of its event time and the progress when it arrived.
    const msgs = [
      msg(1, idOf(1), T0), // remembered from T0
      msg(2, idOf(2), T0 + 30 * MINUTE), // remembered from T0 + 30 min
      // restart here: key order now puts 2 before 1
      msg(3, idOf(3), T0 + 70 * MINUTE), // horizon T0 + 10 min: 1 expires, 2 stays
      msg(4, idOf(2), T0 + 30 * MINUTE), // duplicate
      msg(5, idOf(1), T0), // forgotten: accepted again
    ];
    const plain = runWithRestarts(msgs, opts, new Set(), new Set());
    expect(plain).toEqual(["accepted", "accepted", "accepted", "duplicate", "accepted"]);
    expect(runWithRestarts(msgs, opts, new Set([1]), new Set([1]))).toEqual(plain);
  });

  it("makes the same decisions with snapshots and restarts anywhere (property)", () => {
    const event = fc.record({
      id: fc.integer({ min: 0, max: 40 }),
      // Mostly moving forward with disorder, sometimes far behind.
      dt: fc.integer({ min: -90, max: 120 }),
    });
    fc.assert(
      fc.property(
        fc.array(event, { minLength: 1, maxLength: 120 }),
        fc.integer({ min: 1, max: 12 }),
        fc.integer({ min: 1, max: 240 }),
        fc.array(fc.nat({ max: 119 }), { maxLength: 8 }),
        fc.array(fc.nat({ max: 119 }), { maxLength: 8 }),
        (events, maxIds, horizonMinutes, snaps, restarts) => {
          let t = T0;
          const msgs = events.map((e, k) => {
            t += e.dt * MINUTE;
            return msg(k + 1, idOf(e.id), Math.max(0, t));
          });
          const opts = { dedupeMaxIds: maxIds, dedupeHorizonMs: horizonMinutes * MINUTE };
          const plain = runWithRestarts(msgs, opts, new Set(), new Set());
          const restarted = runWithRestarts(
            msgs,
            opts,
            new Set([...snaps, ...restarts]),
            new Set(restarts),
          );
          expect(restarted).toEqual(plain);
        },
      ),
      { seed: 5, numRuns: 300 },
    );
  });

  describe("through a real LevelDB snapshot store", () => {
    let dir: string | undefined;
    afterEach(async () => {
      if (dir) await rm(dir, { recursive: true, force: true });
      dir = undefined;
    });

    it("decides the same after openStateDb load as without the reload", async () => {
      dir = await mkdtemp(join(tmpdir(), "reco-dedupe-"));
      const opts = { dedupeMaxIds: 5, dedupeHorizonMs: HOUR };
      const msgs: InputMessage[] = [];
      for (let k = 0; k < 60; k++) {
        // Ids repeat after a while; event times wander back and forth.
        msgs.push(msg(k + 1, idOf(k % 17), T0 + ((k * 7) % 23) * 5 * MINUTE));
      }
      const plain = runWithRestarts(msgs, opts, new Set(), new Set());

      const db = await openStateDb(dir);
      try {
        const store = db.instance("parse", 0);
        let state = await store.load();
        let decide = decider(state, opts);
        const got: Decision[] = [];
        for (let k = 0; k < msgs.length; k++) {
          got.push(decide(msgs[k]!));
          if (k % 9 === 4) {
            await store.write(state);
            state = await store.load();
            decide = decider(state, opts);
          }
        }
        expect(got).toEqual(plain);
        // Both outcomes occurred, so the comparison means something.
        expect(new Set(plain)).toEqual(new Set(["accepted", "duplicate"]));
      } finally {
        await db.close();
      }
    });
  });
});
