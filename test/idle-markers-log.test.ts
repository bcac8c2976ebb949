import { describe, expect, it } from "vitest";
import { IDLE_SUBJECT, readIdleMarker } from "../actors/stages/index.js";
import { enc, eventMsg, markerMsg, setup, T0, TIMEOUT } from "./helpers/idle-parse.js";

/*
 * Idle markers are messages of EVENTS: parse moves progress when it reads one back, in log order,
 * so a replay of the log reproduces the same progress without asking any server. Unit tests of
 * the parse handler (test/helpers/idle-parse.ts): replay, a marker that no longer follows the
 * message it was decided after, and what is not a marker.
 */

describe("idle markers in the log: replay reproduces the same progress", () => {
  it("gives a fresh handler that replays the log, markers included, the same outputs and progress", async () => {
    const live = setup();
    live.event(T0);
    live.event(T0 + 1_000);
    await live.pass(TIMEOUT + 1_000);
    const [m1] = live.markers();
    live.input(markerMsg(m1!, 3));
    live.event(T0 + 2_000); // behind the marker's progress: carries it as `wb`
    await live.pass(TIMEOUT + 1_000);
    const [, m2] = live.markers();
    live.input(markerMsg(m2!, 5));
    expect(live.inputs.map((i) => i.subject)).toEqual([
      "events.view",
      "events.view",
      "events._idle",
      "events.view",
      "events._idle",
    ]);
    // A replay reads the same log, at another speed and without asking any server.
    const replay = setup({
      idle: { timeoutMs: TIMEOUT, probe: () => Promise.reject(new Error("offline")) },
    });
    for (const msg of live.inputs) replay.h.handle(msg, 0);
    expect(replay.h.progress).toBe(live.h.progress);
    expect(replay.h.progress).toBe(m2!.body.progress);
    expect(replay.rec.emits).toEqual(live.rec.emits);
    expect(replay.rec.counts).toEqual(live.rec.counts);
    // ... and tells the user partitions of the same jumps, at the same sequences.
    expect(replay.rec.idles).toEqual(live.rec.idles);
    expect(live.rec.idles.filter(([s]) => s === "reco.parse.0")).toEqual([
      ["reco.parse.0", [3, m1!.body.progress]],
      ["reco.parse.0", [5, m2!.body.progress]],
    ]);
    // The event after the first marker carries the marker's progress as its `wb`.
    const afterMarker = live.rec.emits.at(-1)![1] as { wb: number; s: number };
    expect(afterMarker).toMatchObject({ s: 4, wb: m1!.body.progress });
  });

  it("ignores a marker that does not directly follow the message it was decided after", async () => {
    const t = setup();
    t.event(T0);
    await t.pass(TIMEOUT + 1_000);
    const [m] = t.markers();
    // An event raced the decision: it was stored first, the marker lands one sequence later.
    t.event(T0 + 10);
    t.input(markerMsg(m!, t.seq + 1));
    expect(t.h.progress).toBe(T0 + 10);
    expect(t.rec.counts).toEqual({ idle_stale: 1 });
    expect(t.rec.idles).toEqual([]); // no partition hears of it
  });

  it("dead-letters a publisher's event on events._idle as subject_mismatch, and counts it as an event", () => {
    const bad: string[] = [];
    let received = 0;
    const t = setup({
      counters: {
        received: (n) => void (received += n),
        accepted: () => undefined,
        duplicate: () => undefined,
        bad: (r) => void bad.push(r),
      },
    });
    const ev = eventMsg(1, T0);
    t.input({ subject: IDLE_SUBJECT, data: ev.data, headers: {} });
    // Not quite a marker: an extra field.
    t.input({
      subject: IDLE_SUBJECT,
      data: enc.encode(JSON.stringify({ progress: T0, after: 1, x: 1 })),
      headers: {},
    });
    expect(bad).toEqual(["subject_mismatch:event_type", "missing_field:event_id"]);
    expect(received).toBe(2);
    expect(t.h.progress).toBe(-1);
    expect(t.rec.raws.map((r) => r.subject)).toEqual(["reco.dlq.parse", "reco.dlq.parse"]);
  });

  it("reads only exact markers", () => {
    const m = (o: unknown) => readIdleMarker(enc.encode(JSON.stringify(o)));
    expect(m({ progress: T0, after: 7 })).toEqual({ progress: T0, after: 7 });
    expect(m({ after: 7, progress: T0 })).toEqual({ progress: T0, after: 7 });
    expect(m({ progress: T0 })).toBeUndefined();
    expect(m({ progress: -1, after: 7 })).toBeUndefined();
    expect(m({ progress: 1.5, after: 7 })).toBeUndefined();
    expect(m({ progress: "1", after: 7 })).toBeUndefined();
    expect(m({ progress: 9e15, after: 7 })).toBeUndefined();
    expect(m([T0, 7])).toBeUndefined();
    expect(readIdleMarker(enc.encode("{"))).toBeUndefined();
  });
});
