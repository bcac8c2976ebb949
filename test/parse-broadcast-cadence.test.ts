import { describe, expect, it } from "vitest";
import { createStageState } from "../state/store.js";
import { createParseHandler } from "../actors/plan/index.js";
import { HOUR } from "../actors/contract/index.js";
import type { InputMessage } from "../actors/host/index.js";
import { fakeOutput } from "./helpers/stage.js";

/*
 * Parse tells every partition that event time moved (an empty hop to each subject without
 * records). A jump of event time (a replay, a catch-up) is told at the short period; progress
 * that crept on by less than `slowBroadcast.belowMs`, as under live traffic, waits for the slow
 * period. Its view says whether a move is still to be told (the in-memory driver waits for it).
 */
describe("parse's progress broadcast cadence", () => {
  const P = 2;
  const T0 = Date.UTC(2024, 0, 1, 10);
  const subjects = [0, 1].flatMap((p) => [`reco.parse.${p}`, `reco.items.${p}`]).sort();
  const enc = new TextEncoder();
  let seq = 0;
  /** An event of user u1 (partition 0 or 1: only one subject per family gets its records). */
  const event = (ts: number): InputMessage => {
    seq++;
    const e = {
      event_id: `00000000-0000-4000-8000-${seq.toString(16).padStart(12, "0")}`,
      event_type: "view",
      event_ts: ts,
      user_id: "u1",
      item_id: "p1",
    };
    return {
      seq,
      subject: "events.view",
      data: enc.encode(JSON.stringify(e)),
      headers: {},
      time: ts,
    };
  };

  const create = (slowBroadcast?: { everyMs: number; belowMs: number }) => {
    let now = 1_000_000;
    const { out, rec } = fakeOutput();
    const h = createParseHandler(createStageState(), out, {
      partitions: P,
      preset: "ecommerce",
      dedupeHorizonMs: HOUR,
      dedupeMaxIds: 100,
      maxEventBytes: 64 * 1024,
      broadcastEveryMs: 100,
      ...(slowBroadcast ? { slowBroadcast } : {}),
      clock: () => now,
    });
    /** Moves the clock on, then runs `act`: the subjects it told progress to (sorted). */
    const told = (ms: number, act: () => void) => {
      now += ms;
      rec.touches.length = 0;
      act();
      return [...new Set(rec.touches)].sort();
    };
    const handle = (ms: number, m: InputMessage) => told(ms, () => h.handle(m, m.seq - 1));
    const tick = (ms: number) => told(ms, () => h.tick());
    return { h, handle, tick };
  };

  it("tells a creep of event time once a second, a jump at the short period", () => {
    const { h, handle, tick } = create({ everyMs: 1_000, belowMs: 10_000 });
    // The first progress is a jump from none: told with the event's batch.
    expect(handle(0, event(T0))).toEqual(subjects);
    expect(h.broadcastPending).toBe(false);

    // A creep of 2 s of event time: not at the short period, at the slow one.
    expect(handle(100, event(T0 + 2_000))).toEqual([]);
    expect(h.broadcastPending).toBe(true);
    expect(tick(100)).toEqual([]);
    expect(tick(500)).toEqual([]);
    expect(h.broadcastPending).toBe(true);
    expect(tick(300)).toEqual(subjects);
    expect(h.broadcastPending).toBe(false);

    // A jump of a minute: at the short period after the last broadcast.
    expect(handle(50, event(T0 + 62_000))).toEqual([]);
    expect(h.broadcastPending).toBe(true);
    expect(tick(50)).toEqual(subjects);
    expect(h.broadcastPending).toBe(false);
    // Nothing moved since: nothing more to tell.
    expect(tick(2_000)).toEqual([]);
  });

  it("tells every move at the short period without a slow cadence", () => {
    const { h, handle } = create();
    expect(handle(0, event(T0))).toEqual(subjects);
    expect(handle(100, event(T0 + 2_000))).toEqual(subjects);
    expect(h.broadcastPending).toBe(false);
  });
});
