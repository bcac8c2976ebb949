import { describe, it, expect } from "vitest";
import { create, toBinary } from "@bufbuild/protobuf";
import { ClickEventSchema, EventType as PbEventType } from "../proto/gen/reco/v1/reco_pb.js";
import { createStageState, type StageStateInternal } from "../state/store.js";
import type { InputMessage } from "../actors/host/index.js";
import type { ParseOptions } from "../actors/stages/index.js";
import { type ParsedRecord, partitionOf, HOUR, MINUTE } from "../actors/contract/index.js";
import { createParseHandler } from "../actors/plan/index.js";
import { fakeOutput } from "./helpers/stage.js";

const enc = new TextEncoder();
const P = 4;
const T0 = Date.UTC(2024, 0, 1, 10, 0, 0);

let idCounter = 0;
/** A fresh valid UUID per call. */
function uuid(): string {
  const n = (++idCounter).toString(16).padStart(12, "0");
  return `00000000-0000-4000-8000-${n}`;
}

function event(overrides: Record<string, unknown> = {}): Record<string, unknown> {
  return {
    event_id: uuid(),
    event_type: "view",
    event_ts: T0,
    user_id: "u1",
    item_id: "p1",
    ...overrides,
  };
}

function msgOf(
  seq: number,
  ev: Record<string, unknown>,
  subject = `events.${String(ev.event_type)}`,
  headers: Record<string, string> = {},
): InputMessage {
  return { seq, subject, data: enc.encode(JSON.stringify(ev)), headers };
}

function setup(opts: Partial<ParseOptions> = {}, state: StageStateInternal = createStageState()) {
  const { out, rec } = fakeOutput();
  let now = 1_000_000;
  const counts = { accepted: 0, duplicate: 0, bad: [] as string[] };
  const h = createParseHandler(state, out, {
    partitions: P,
    preset: "ecommerce",
    dedupeHorizonMs: HOUR,
    dedupeMaxIds: 10_000,
    maxEventBytes: 64 * 1024,
    broadcastEveryMs: 1000,
    counters: {
      accepted: (n) => void (counts.accepted += n),
      duplicate: (n) => void (counts.duplicate += n),
      bad: (r) => void counts.bad.push(r),
    },
    clock: () => now,
    ...opts,
  });
  return {
    h,
    rec,
    counts,
    state,
    setNow: (t: number) => void (now = t),
  };
}

const records = (emits: [string, unknown][]) => emits.map(([, r]) => r as ParsedRecord);

describe("parse", () => {
  it("should send an accepted event to reco.parse.<hash(user)> and reco.items.<hash(item)>", () => {
    const { h, rec, counts } = setup();
    const ev = event({ user_id: "alice", item_id: "sku-7", category_code: "a.b", price: 3 });
    h.handle(msgOf(11, ev), 0);
    const expected: ParsedRecord = {
      id: String(ev.event_id),
      t: "view",
      ts: T0,
      u: "alice",
      i: "sku-7",
      c: "a",
      b: "",
      pr: 3,
      r: -1,
      s: 11,
      wb: -1,
    };
    expect(rec.emits).toEqual([
      [`reco.parse.${partitionOf("alice", P)}`, expected],
      [`reco.items.${partitionOf("sku-7", P)}`, expected],
    ]);
    expect(counts.accepted).toBe(1);
    expect(rec.raws).toEqual([]);
  });

  it("should stamp each record with the progress before it (wb) and its sequence (s)", () => {
    const { h, rec } = setup();
    h.handle(msgOf(1, event({ event_ts: T0 })), 0);
    h.handle(msgOf(2, event({ event_ts: T0 + 5 * MINUTE })), 0);
    h.handle(msgOf(3, event({ event_ts: T0 + 1 * MINUTE })), 0); // out of order: no progress
    h.handle(msgOf(4, event({ event_ts: T0 + 2 * MINUTE })), 0);
    const byUser = records(rec.emits.filter(([s]) => s.startsWith("reco.parse.")));
    expect(byUser.map((r) => [r.s, r.wb])).toEqual([
      [1, -1],
      [2, T0],
      [3, T0 + 5 * MINUTE],
      [4, T0 + 5 * MINUTE],
    ]);
    expect(h.progress).toBe(T0 + 5 * MINUTE);
    // Progress is stamped on outgoing batches: initial -1, then each advance.
    expect(rec.progress).toEqual([-1, T0, T0 + 5 * MINUTE]);
  });

  it("should count a duplicate event_id and not emit it again", () => {
    const { h, rec, counts } = setup();
    const ev = event();
    h.handle(msgOf(1, ev), 0);
    const emitted = rec.emits.length;
    h.handle(msgOf(2, ev), 0);
    h.handle(msgOf(3, { ...ev, event_id: String(ev.event_id).toUpperCase() }), 0);
    expect(rec.emits.length).toBe(emitted);
    expect(counts.accepted).toBe(1);
    expect(counts.duplicate).toBe(2);
    expect(rec.raws).toEqual([]);
  });

  it("should send bad JSON to reco.dlq.parse with the reason, subject, sequence and original bytes", () => {
    const { h, rec, counts } = setup();
    const data = enc.encode('{"event_id": "x", ');
    h.handle({ seq: 7, subject: "events.view", data, headers: { "Nats-Msg-Id": "m7" } }, 0);
    expect(rec.emits).toEqual([]);
    expect(rec.raws).toHaveLength(1);
    const dl = rec.raws[0]!;
    expect(dl.subject).toBe("reco.dlq.parse");
    expect(dl.data).toEqual(data);
    expect(dl.headers).toEqual({
      "Nats-Msg-Id": "m7",
      "Reco-Reason": "bad_json",
      "Reco-Subject": "events.view",
      "Reco-Seq": "7",
    });
    expect(dl.msgId).toBe("dlq.parse.7");
    expect(counts.bad).toEqual(["bad_json"]);
  });

  it("should dead-letter an event with a missing field as missing_field:<name>", () => {
    const { h, rec, counts } = setup();
    const ev = event();
    delete ev.user_id;
    const m = msgOf(8, ev);
    h.handle(m, 0);
    expect(rec.raws.map((r) => [r.headers["Reco-Reason"], r.data])).toEqual([
      ["missing_field:user_id", m.data],
    ]);
    expect(counts.bad).toEqual(["missing_field:user_id"]);
    expect(rec.emits).toEqual([]);
  });

  it("should dead-letter an event whose type does not match its subject", () => {
    const { h, rec } = setup();
    h.handle(msgOf(1, event({ event_type: "click" }), "events.view"), 0);
    h.handle(msgOf(2, event({ event_type: "view" }), "other.view"), 0);
    expect(rec.raws.map((r) => [r.headers["Reco-Reason"], r.headers["Reco-Subject"]])).toEqual([
      ["subject_mismatch:event_type", "events.view"],
      ["subject_mismatch:event_type", "other.view"],
    ]);
    expect(rec.emits).toEqual([]);
  });

  it("should dead-letter an event larger than maxEventBytes as event_too_large", () => {
    const m = msgOf(5, event({ review_text: "r".repeat(300) }));
    const atLimit = setup({ maxEventBytes: m.data.length });
    atLimit.h.handle(m, 0);
    expect(atLimit.rec.emits).toHaveLength(2);

    const over = setup({ maxEventBytes: m.data.length - 1 });
    over.h.handle(m, 0);
    expect(over.rec.emits).toEqual([]);
    expect(over.rec.raws.map((r) => [r.headers["Reco-Reason"], r.data])).toEqual([
      ["event_too_large", m.data],
    ]);
  });

  it("should not move progress on a bad event", () => {
    const { h } = setup();
    h.handle(msgOf(1, event({ event_ts: T0 })), 0);
    h.handle(msgOf(2, event({ event_ts: T0 + HOUR, user_id: 0 })), 0);
    expect(h.progress).toBe(T0);
  });

  describe("protobuf", () => {
    const pbHeaders = { "Content-Type": "application/protobuf" };

    it("should accept a protobuf ClickEvent when Content-Type is application/protobuf", () => {
      const { h, rec } = setup();
      const id = uuid();
      const pb = create(ClickEventSchema, {
        eventId: id,
        eventType: PbEventType.CLICK,
        eventTs: "2024-01-01T10:00:00Z",
        userId: "bob",
        itemId: "p9",
        categoryCode: "electronics.phone",
        brand: "acme",
        price: 19.5,
      });
      h.handle(
        {
          seq: 3,
          subject: "events.click",
          data: toBinary(ClickEventSchema, pb),
          headers: pbHeaders,
        },
        0,
      );
      expect(rec.raws).toEqual([]);
      expect(records(rec.emits)[0]).toEqual({
        id,
        t: "click",
        ts: T0,
        u: "bob",
        i: "p9",
        c: "electronics",
        b: "acme",
        pr: 19.5,
        r: -1,
        s: 3,
        wb: -1,
      });
    });

    it("should dead-letter undecodable protobuf bytes as bad_protobuf", () => {
      const { h, rec } = setup();
      // A varint that never ends: a truncated message.
      const data = Uint8Array.from([0x08, 0xff, 0xff, 0xff]);
      h.handle({ seq: 4, subject: "events.click", data, headers: pbHeaders }, 0);
      expect(rec.raws.map((r) => r.headers["Reco-Reason"])).toEqual(["bad_protobuf"]);
    });

    it("should apply the contract to protobuf events too (a rating out of range)", () => {
      const { h, rec } = setup();
      const pb = create(ClickEventSchema, {
        eventId: uuid(),
        eventType: PbEventType.RATING,
        eventTs: String(T0),
        userId: "bob",
        itemId: "m1",
        rating: 7,
      });
      h.handle(
        {
          seq: 5,
          subject: "events.rating",
          data: toBinary(ClickEventSchema, pb),
          headers: pbHeaders,
        },
        0,
      );
      expect(rec.raws.map((r) => r.headers["Reco-Reason"])).toEqual(["rating_out_of_range"]);
    });
  });

  describe("movies preset", () => {
    it("should turn a rating of 4 or more into a purchase and keep 3.5 a rating", () => {
      const { h, rec } = setup({ preset: "movies" });
      h.handle(msgOf(1, event({ event_type: "rating", rating: 4, item_id: "m1" })), 0);
      h.handle(msgOf(2, event({ event_type: "rating", rating: 5, item_id: "m2" })), 0);
      h.handle(msgOf(3, event({ event_type: "rating", rating: 3.5, item_id: "m3" })), 0);
      const byItem = records(rec.emits.filter(([s]) => s.startsWith("reco.items.")));
      expect(byItem.map((r) => [r.i, r.t, r.r])).toEqual([
        ["m1", "purchase", 4],
        ["m2", "purchase", 5],
        ["m3", "rating", 3.5],
      ]);
    });

    it("should keep ratings as ratings in the ecommerce preset", () => {
      const { h, rec } = setup({ preset: "ecommerce" });
      h.handle(msgOf(1, event({ event_type: "rating", rating: 5 })), 0);
      expect(records(rec.emits).map((r) => r.t)).toEqual(["rating", "rating"]);
    });
  });

  describe("progress broadcast", () => {
    const everySubject = [0, 1, 2, 3].flatMap((p) => [`reco.parse.${p}`, `reco.items.${p}`]);

    it("should touch every partition subject when progress changed and broadcastEveryMs passed", () => {
      const { h, rec, setNow } = setup({ broadcastEveryMs: 1000 });
      setNow(10_000);
      h.handle(msgOf(1, event({ event_ts: T0 })), 0); // progress moved, clock 10,000 - 0 >= 1,000
      expect([...rec.touches].sort()).toEqual([...everySubject].sort());

      rec.touches.length = 0;
      setNow(10_500);
      h.handle(msgOf(2, event({ event_ts: T0 + 1 })), 0); // moved, but only 500 ms later
      expect(rec.touches).toEqual([]);

      setNow(11_000);
      h.handle(msgOf(3, event({ event_ts: T0 })), 0); // no move now, but T0+1 not broadcast yet
      expect([...rec.touches].sort()).toEqual([...everySubject].sort());

      rec.touches.length = 0;
      setNow(20_000);
      h.handle(msgOf(4, event({ event_ts: T0 - MINUTE })), 0); // nothing new to broadcast
      expect(rec.touches).toEqual([]);
    });
  });

  describe("dedupe memory", () => {
    it("should forget ids whose event time is older than progress − horizon", () => {
      const { h, rec, counts } = setup({ dedupeHorizonMs: HOUR });
      const old = event({ event_ts: T0 });
      h.handle(msgOf(1, old), 0);
      // Progress T0 + 59 min: horizon T0 - 1 min, so the id is still remembered.
      h.handle(msgOf(2, event({ event_ts: T0 + 59 * MINUTE })), 0);
      h.handle(msgOf(3, old), 0);
      expect(counts.duplicate).toBe(1);
      // Progress T0 + 61 min: horizon T0 + 1 min > T0, so the id is forgotten.
      h.handle(msgOf(4, event({ event_ts: T0 + 61 * MINUTE })), 0);
      const before = rec.emits.length;
      h.handle(msgOf(5, old), 0);
      expect(rec.emits.length).toBe(before + 2);
      expect(counts.duplicate).toBe(1);
    });

    it("should keep at most dedupeMaxIds ids, oldest out first", () => {
      const { h, counts } = setup({ dedupeMaxIds: 2 });
      const a = event({ event_ts: T0 });
      const b = event({ event_ts: T0 + 1 });
      const c = event({ event_ts: T0 + 2 });
      h.handle(msgOf(1, a), 0);
      h.handle(msgOf(2, b), 0);
      h.handle(msgOf(3, c), 0); // three ids > 2: a goes
      h.handle(msgOf(4, b), 0); // still remembered
      expect(counts.duplicate).toBe(1);
      h.handle(msgOf(5, a), 0); // forgotten: accepted again
      expect(counts.accepted).toBe(4);
    });

    it("should remember ids and progress across a restart from the same state", () => {
      const first = setup();
      const ev = event({ event_ts: T0 + MINUTE });
      first.h.handle(msgOf(1, ev), 0);
      const second = setup({}, first.state);
      expect(second.h.progress).toBe(T0 + MINUTE);
      expect(second.rec.progress).toEqual([T0 + MINUTE]);
      second.h.handle(msgOf(2, ev), 0);
      expect(second.counts.duplicate).toBe(1);
      expect(second.rec.emits).toEqual([]);
    });
  });
});
