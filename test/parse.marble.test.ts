import { describe, it, expect } from "vitest";
import { filter } from "rxjs";
import { TestScheduler } from "rxjs/testing";
import { createStageLogic, withProcessingTime } from "../runtime/index.js";
import type { InputMessage } from "../actors/host/index.js";
import {
  IDLE_SIGNATURE_HEADER,
  IDLE_SUBJECT,
  parseStage,
  signIdleMarker,
  type ConsumerView,
  type ParseSettings,
} from "../actors/stages/index.js";
import type { ParsedRecord } from "../actors/contract/index.js";
import { batchMaker, stageContext } from "./helpers/stage.js";

const T0 = Date.UTC(2024, 0, 1, 10, 0, 0);
const HOUR = 3_600_000;
const enc = new TextEncoder();
const KEY = enc.encode("marker key of the test engine");

let ids = 0;
const uuid = () => `00000000-0000-4000-8000-${(++ids).toString(16).padStart(12, "0")}`;

/** A published event at stream sequence `seq`, stored by JetStream at `time`. */
function msg(seq: number, ts: number, o: Record<string, unknown> = {}): InputMessage {
  const ev = { event_id: uuid(), event_type: "view", event_ts: ts, user_id: "u1", item_id: "p1" };
  const e = { ...ev, ...o };
  return {
    seq,
    subject: `events.${String(e.event_type)}`,
    data: enc.encode(JSON.stringify(e)),
    headers: {},
    time: T0,
  };
}
const rec = (m: InputMessage, wb: number): ParsedRecord => {
  const e = JSON.parse(new TextDecoder().decode(m.data)) as Record<string, string | number>;
  return {
    id: e.event_id as string,
    t: "view",
    ts: e.event_ts as number,
    u: e.user_id as string,
    i: e.item_id as string,
    c: "",
    b: "",
    pr: -1,
    r: -1,
    s: m.seq,
    wb,
  };
};

function setup(settings: Partial<ParseSettings> = {}) {
  const ts = new TestScheduler((actual, expected) => expect(actual).toEqual(expected));
  const { ctx, counts } = stageContext<ParseSettings>(
    {
      partitions: 4,
      preset: "ecommerce",
      dedupeHorizonMs: HOUR,
      dedupeMaxIds: 1000,
      maxEventBytes: 4096,
      broadcastEveryMs: 100,
      ...settings,
    },
    ts,
  );
  const logic = createStageLogic(parseStage, ctx);
  return { ts, logic, counts, batch: batchMaker<InputMessage>() };
}

describe("parse stage (marbles)", () => {
  it("should route accepted events with the progress before each, drop duplicates, dead-letter bad ones", () => {
    const { ts, logic, batch } = setup();
    const m1 = msg(1, T0);
    const m2 = msg(2, T0 + 5);
    const dup = { ...msg(3, T0 + 9), data: m1.data }; // m1's event id again
    const bad = { ...msg(4, T0), data: enc.encode("{not json") };
    const future = msg(5, T0 + 2 * HOUR); // stored at T0: over an hour ahead
    const older = msg(6, T0 - HOUR); // behind progress: parse passes it on, late is decided later
    ts.run(({ cold, expectObservable }) => {
      const input = cold("a-b", {
        a: batch(-1, [m1, m2]),
        b: batch(-1, [dup, bad, future, older]),
      });
      const r1 = rec(m1, -1);
      const r2 = rec(m2, T0);
      const r6 = rec(older, T0 + 5);
      expectObservable(input.pipe(logic.operator)).toBe("a-b", {
        a: { user: [r1, r2], items: [r1, r2], progress: [T0 + 5] },
        b: {
          user: [r6],
          items: [r6],
          dlq: [
            { msg: bad, reason: "bad_json" },
            { msg: future, reason: "event_ts_in_future" },
          ],
        },
      });
    });
  });

  it("should broadcast progress on the processing-time trigger when input goes quiet, at most every broadcastEveryMs", () => {
    const { ts, logic, batch } = setup();
    const m1 = msg(1, T0);
    const m2 = msg(2, T0 + 1);
    ts.run(({ cold, expectObservable }) => {
      const input = cold("a 29ms b", { a: batch(-1, [m1]), b: batch(-1, [m2]) });
      const out$ = withProcessingTime(input, 50, ts).pipe(logic.operator);
      // Triggers at 50, 100, 150: the one at 100 is the first 100 ms after the start.
      expectObservable(out$, "^ 160ms !").toBe("a 29ms b 19ms x 49ms y 49ms z", {
        a: { user: [rec(m1, -1)], items: [rec(m1, -1)], progress: [T0] },
        b: { user: [rec(m2, T0)], items: [rec(m2, T0)], progress: [T0 + 1] },
        x: {},
        y: { broadcast: [T0 + 1] },
        // Progress did not move since: nothing more to tell.
        z: {},
      });
    });
  });

  it("should write a signed idle marker once the consumer is caught up and quiet for IDLE_TIMEOUT_MS, and move progress when it reads it back", () => {
    // The server's answer, given synchronously (a thenable) so the probe runs in virtual time.
    const caughtUp: ConsumerView = { pending: 0, delivered: 1, ackFloor: 0, waiting: 1 };
    const probe = () =>
      ({ then: (ok: (v: ConsumerView) => void) => ok(caughtUp) }) as Promise<ConsumerView>;
    const { ts, logic, batch, counts } = setup({
      markerKey: KEY,
      idle: { timeoutMs: 1000, probe },
    });
    const m1 = msg(1, T0);
    const marker = { progress: T0 + 1000, after: 1 };
    const data = enc.encode(JSON.stringify(marker));
    const back: InputMessage = {
      seq: 2,
      subject: IDLE_SUBJECT,
      data,
      headers: { [IDLE_SIGNATURE_HEADER]: signIdleMarker(KEY, data) },
    };
    ts.run(({ cold, expectObservable }) => {
      const input = cold("a 1049ms m", { a: batch(-1, [m1]), m: batch(-1, [back]) });
      const out$ = withProcessingTime(input, 100, ts).pipe(
        logic.operator,
        filter((o) => Object.keys(o).length > 0), // triggers with nothing to say
      );
      expectObservable(out$, "^ 1200ms !").toBe("a 99ms b 899ms c 49ms d", {
        a: { user: [rec(m1, -1)], items: [rec(m1, -1)], progress: [T0] },
        b: { broadcast: [T0] },
        // Event time follows processing time while idle: T0 + the 1000 ms since the last event.
        c: { marker: [marker] },
        // Read back in place (right after sequence 1): progress moves, and every partition hears,
        // the user partitions of where it jumped too.
        d: {
          user: [],
          items: [],
          progress: [T0 + 1000],
          broadcast: [T0 + 1000],
          idle: [{ s: 2, progress: T0 + 1000 }],
        },
      });
    });
    expect(counts).toEqual({ idle_marker: 1 });
  });

  it("should not write a marker while the consumer has messages pending (a backlog is not idleness)", () => {
    const behind: ConsumerView = { pending: 5, delivered: 1, ackFloor: 0, waiting: 1 };
    const probe = () =>
      ({ then: (ok: (v: ConsumerView) => void) => ok(behind) }) as Promise<ConsumerView>;
    const { ts, logic, batch } = setup({ markerKey: KEY, idle: { timeoutMs: 1000, probe } });
    ts.run(({ cold, expectObservable }) => {
      const input = cold("a", { a: batch(-1, [msg(1, T0)]) });
      const out$ = withProcessingTime(input, 100, ts).pipe(
        logic.operator,
        filter((o) => "marker" in o),
      );
      expectObservable(out$, "^ 3000ms !").toBe("");
    });
  });
});
