import { describe, it, expect } from "vitest";
import { createStageState } from "../state/store.js";
import type { Envelope, InputMessage } from "../actors/host/index.js";
import type { ParsedRecord, EventType } from "../actors/contract/index.js";
import type { WindowOutput, WindowRecord } from "../actors/stages/index.js";
import { createWindowHandler } from "../actors/plan/index.js";
import { MINUTE } from "../actors/contract/index.js";
import { fakeOutput } from "./helpers/stage.js";

const enc = new TextEncoder();
/** A 5-minute boundary. */
const T0 = Date.UTC(2024, 0, 1, 10, 0, 0);
const SIZE = 5 * MINUTE;
const OOO = 10 * MINUTE;

let seq = 0;
function ev(
  ts: number,
  u: string,
  i: string,
  t: EventType = "view",
  extra: Partial<ParsedRecord> = {},
): ParsedRecord {
  seq++;
  return { id: `id-${seq}`, t, ts, u, i, c: "", b: "", pr: -1, r: -1, s: seq, wb: -1, ...extra };
}

function setup() {
  const { out, rec } = fakeOutput();
  const h = createWindowHandler(createStageState(), out, {
    partition: 2,
    sizeMs: SIZE,
    outOfOrdernessMs: OOO,
  });
  let n = 0;
  /** Feeds one batch and returns what it emitted. */
  const feed = (wm: number, recs: ParsedRecord[]): WindowOutput[] => {
    const before = rec.emits.length;
    n++;
    const env: Envelope<ParsedRecord> = { upTo: n, wm, recs };
    const msg: InputMessage = {
      seq: n,
      subject: "reco.watermark.2",
      data: enc.encode(JSON.stringify(env)),
      headers: {},
    };
    h.handle(msg, n - 1);
    return rec.emits.slice(before).map(([s, r]) => {
      expect(s).toBe("reco.window.2");
      return r as WindowOutput;
    });
  };
  return { h, rec, feed };
}

const counts = (outs: WindowOutput[]) =>
  outs
    .filter((o): o is WindowRecord => !("close" in o))
    .map((o) => [o.w, o.u, o.i, o.t, o.n] as const)
    .sort((a, b) => a[0] - b[0] || `${a[1]}${a[2]}${a[3]}`.localeCompare(`${b[1]}${b[2]}${b[3]}`));

const closes = (outs: WindowOutput[]) =>
  outs.filter((o): o is { close: number } => "close" in o).map((o) => o.close);

describe("window", () => {
  it("should count per (window, user, item, type) with 5-minute tumbling boundaries", () => {
    const { feed } = setup();
    const out = feed(T0 + 6 * MINUTE, [
      ev(T0, "u1", "p1"), // first millisecond of [T0, T0+5m)
      ev(T0 + SIZE - 1, "u1", "p1"), // last millisecond of the same window
      ev(T0 + SIZE, "u1", "p1"), // first millisecond of the next window
      ev(T0 + 2 * MINUTE, "u1", "p1", "click"),
      ev(T0 + 3 * MINUTE, "u2", "p1"),
      ev(T0 + 3 * MINUTE, "u1", "p2"),
    ]);
    expect(counts(out)).toEqual([
      [T0, "u1", "p1", "click", 1],
      [T0, "u1", "p1", "view", 2],
      [T0, "u1", "p2", "view", 1],
      [T0, "u2", "p1", "view", 1],
      [T0 + SIZE, "u1", "p1", "view", 1],
    ]);
    expect(closes(out)).toEqual([]);
  });

  it("should emit in update mode only the keys a batch changed, with their new count", () => {
    const { feed } = setup();
    feed(T0, [ev(T0, "u1", "p1"), ev(T0, "u2", "p2")]);
    const second = feed(T0 + MINUTE, [ev(T0 + MINUTE, "u1", "p1"), ev(T0 + MINUTE, "u1", "p1")]);
    // One key changed twice in the batch: one record with 1 + 2 = 3; u2 is not repeated.
    expect(counts(second)).toEqual([[T0, "u1", "p1", "view", 3]]);
  });

  it("should carry category, brand and the last price seen", () => {
    const { feed } = setup();
    const a = feed(T0, [ev(T0, "u1", "p1", "view", { c: "electronics", b: "acme", pr: 10 })]);
    expect(a[0]).toMatchObject({ c: "electronics", b: "acme", pr: 10, n: 1 });
    const b = feed(T0, [ev(T0 + 1, "u1", "p1", "view")]); // no category/brand/price: carried
    expect(b[0]).toMatchObject({ c: "electronics", b: "acme", pr: 10, n: 2 });
    const c = feed(T0, [ev(T0 + 2, "u1", "p1", "view", { pr: 12 })]);
    expect(c[0]).toMatchObject({ c: "electronics", b: "acme", pr: 12, n: 3 });
  });

  it("should emit {close: w} exactly once when wm − 10 min reaches the window end", () => {
    const { feed } = setup();
    feed(T0 + MINUTE, [ev(T0 + MINUTE, "u1", "p1")]);
    // Window [T0, T0+5m) ends at T0+5m: final once progress − 10 min >= T0+5m, i.e. at T0+15m.
    expect(closes(feed(T0 + 15 * MINUTE - 1, []))).toEqual([]);
    expect(closes(feed(T0 + 15 * MINUTE, []))).toEqual([T0]);
    expect(closes(feed(T0 + 16 * MINUTE, []))).toEqual([]);
    expect(closes(feed(T0 + 40 * MINUTE, []))).toEqual([]);
  });

  it("should emit the batch's counts before closing a window in the same batch", () => {
    const { feed } = setup();
    const out = feed(T0 + 15 * MINUTE, [ev(T0 + MINUTE, "u1", "p1")]);
    expect(out).toEqual([
      { w: T0, u: "u1", i: "p1", t: "view", n: 1, c: "", b: "", pr: -1 },
      { close: T0 },
    ]);
  });

  it("should close several windows in start order when progress jumps", () => {
    const { feed } = setup();
    feed(T0 + 11 * MINUTE, [
      ev(T0 + 10 * MINUTE, "u1", "p1"),
      ev(T0, "u1", "p1"),
      ev(T0 + 5 * MINUTE, "u2", "p1"),
    ]);
    // Progress T0+30m: watermark T0+20m passes the ends T0+5m, T0+10m and T0+15m.
    expect(closes(feed(T0 + 30 * MINUTE, []))).toEqual([T0, T0 + 5 * MINUTE, T0 + 10 * MINUTE]);
  });

  it("should drop a closed window's state: openWindows() shrinks", () => {
    const { h, feed } = setup();
    feed(T0 + 6 * MINUTE, [
      ev(T0, "u1", "p1"),
      ev(T0, "u1", "p2"),
      ev(T0 + 5 * MINUTE, "u1", "p1"),
    ]);
    expect(h.openWindows()).toEqual(
      new Map([
        [T0, 2],
        [T0 + 5 * MINUTE, 1],
      ]),
    );
    feed(T0 + 15 * MINUTE, []);
    expect(h.openWindows()).toEqual(new Map([[T0 + 5 * MINUTE, 1]]));
    feed(T0 + 20 * MINUTE, []);
    expect(h.openWindows()).toEqual(new Map());
  });

  it("should keep state bounded by the open windows over a long stream", () => {
    const { h, feed } = setup();
    let most = 0;
    // 10 hours of events, one batch per minute, 3 users × 2 items each minute.
    for (let m = 0; m < 600; m++) {
      const t = T0 + m * MINUTE;
      feed(
        t,
        ["u1", "u2", "u3"].flatMap((u) => [ev(t, u, "p1"), ev(t, u, "p2")]),
      );
      most = Math.max(most, h.openWindows().size);
    }
    // Open windows: those ending after progress − 10 min, i.e. at most 10/5 + 1 = 3 windows.
    expect(most).toBeLessThanOrEqual(3);
    for (const keys of h.openWindows().values()) expect(keys).toBeLessThanOrEqual(3 * 2);
  });

  it("should set progress from the envelope and touch its output on every batch", () => {
    const { rec, feed } = setup();
    feed(T0 + MINUTE, []);
    feed(T0, []); // progress never moves back
    expect(rec.progress).toEqual([T0 + MINUTE, T0 + MINUTE]);
    expect(rec.touches).toEqual(["reco.window.2", "reco.window.2"]);
  });
});
