import { describe, expect, it } from "vitest";
import fc from "fast-check";
import { create, toBinary } from "@bufbuild/protobuf";
import { ClickEventSchema } from "../proto/gen/reco/v1/reco_pb.js";
import { createStageState } from "../state/store.js";
import type { InputMessage, StageOutput } from "../actors/host/index.js";
import { createParseHandler } from "../actors/plan/index.js";
import { EVENT_TYPES } from "../actors/contract/index.js";

/**
 * Thousands of random byte strings and mutated valid events, JSON and protobuf,
 * through the parse handler with a fake StageOutput. parse never throws out of the actor, the
 * accounting identity in = accepted + dead-lettered + duplicates holds after every message, and
 * every dead letter carries its original bytes, a non-empty Reco-Reason, the subject and the
 * sequence. Seeded: a failure reproduces.
 */

const enc = new TextEncoder();
const PB = "application/protobuf";
const T0 = Date.UTC(2024, 0, 1);

interface Raw {
  subject: string;
  data: Uint8Array;
  headers: Record<string, string>;
  msgId: string;
}

function harness() {
  const counts = { in: 0, accepted: 0, duplicate: 0, bad: 0 };
  const raws: Raw[] = [];
  let emits = 0;
  const out = {
    emit: () => void emits++,
    touch: () => undefined,
    setProgress: () => undefined,
    raw: (subject: string, data: Uint8Array, headers: Record<string, string>, msgId: string) =>
      void raws.push({ subject, data, headers, msgId }),
    kvPut: () => undefined,
    count: () => undefined,
  } as StageOutput;
  const h = createParseHandler(createStageState(), out, {
    partitions: 3,
    preset: "movies",
    dedupeHorizonMs: 3_600_000,
    // Small, so that forgetting is exercised too.
    dedupeMaxIds: 16,
    maxEventBytes: 2048,
    broadcastEveryMs: 0,
    clock: () => 0,
    counters: {
      received: (n) => void (counts.in += n),
      accepted: (n) => void (counts.accepted += n),
      duplicate: (n) => void (counts.duplicate += n),
      bad: (reason) => {
        expect(reason).toMatch(/^[a-z_]+(:[a-z_]+)?$/);
        counts.bad += 1;
      },
    },
  });
  let seq = 0;
  /** Handles one message and checks everything that must hold after it. */
  const feed = (m: Omit<InputMessage, "seq">) => {
    const msg = { ...m, seq: ++seq };
    const before = { ...counts, raws: raws.length, emits };
    expect(() => h.handle(msg, 0)).not.toThrow();
    // Exactly one outcome per message, and the identity holds.
    expect(counts.in).toBe(before.in + 1);
    expect(counts.in).toBe(counts.accepted + counts.bad + counts.duplicate);
    if (counts.bad > before.bad) {
      expect(raws.length).toBe(before.raws + 1);
      const dl = raws.at(-1)!;
      expect(dl.subject).toBe("reco.dlq.parse");
      expect(dl.data).toBe(msg.data);
      expect(dl.headers["Reco-Reason"]).toMatch(/\S/);
      expect(dl.headers["Reco-Subject"]).toBe(msg.subject);
      expect(dl.headers["Reco-Seq"]).toBe(String(msg.seq));
      expect(dl.msgId).toBe(`dlq.parse.${msg.seq}`);
      // JetStream control headers of the original never reach the dead letter's own publish.
      for (const k of Object.keys(dl.headers))
        expect(k.toLowerCase().startsWith("nats-") && k !== "Nats-Msg-Id").toBe(false);
    } else {
      expect(raws.length).toBe(before.raws);
    }
    expect(emits).toBe(before.emits + 2 * (counts.accepted - before.accepted));
  };
  return { feed, counts };
}

const subjectArb = fc.oneof(
  fc.constantFrom(...EVENT_TYPES.map((t) => `events.${t}`)),
  fc.constantFrom("events.bogus", "events.view.extra", "events.", "other.view"),
);
const headersArb = fc.oneof(
  fc.constant({}),
  fc.constant({ "Content-Type": PB }),
  fc.constant({ "content-type": `${PB}; proto=reco.v1.ClickEvent` }),
  fc.constant({ "Content-Type": "application/json", "Nats-Expected-Stream": "EVENTS" }),
  fc.dictionary(fc.string({ minLength: 1, maxLength: 12 }), fc.string({ maxLength: 20 }), {
    maxKeys: 3,
  }),
);

/** A valid JSON event (as an object), from a small id pool so that duplicates happen. */
const validEventArb = fc
  .record({
    id: fc.integer({ min: 0, max: 30 }),
    type: fc.constantFrom(...EVENT_TYPES),
    ts: fc.integer({ min: 0, max: 48 * 60 }),
    user: fc.oneof(fc.string({ minLength: 1, maxLength: 10 }), fc.integer({ min: 1 })),
    item: fc.oneof(fc.string({ minLength: 1, maxLength: 10 }), fc.integer({ min: 1 })),
    rating: fc.double({ min: 0.5, max: 5, noNaN: true }),
    price: fc.double({ min: 0, max: 1e6, noNaN: true }),
  })
  .map((e) => ({
    event_id: `00000000-0000-4000-8000-${e.id.toString(16).padStart(12, "0")}`,
    event_type: e.type,
    event_ts: new Date(T0 + e.ts * 60_000).toISOString(),
    user_id: e.user,
    item_id: e.item,
    category_code: "electronics.phone",
    price: e.price,
    ...(e.type === "rating" ? { rating: e.rating } : {}),
  }));

const fieldArb = fc.constantFrom(
  "event_id",
  "event_type",
  "event_ts",
  "user_id",
  "item_id",
  "product_id",
  "category_code",
  "brand",
  "price",
  "rating",
  "review_text",
  "session_id",
  "__proto__",
  "constructor",
);

/** A valid event with one mutation: a field removed, replaced by any JSON value, or added. */
const mutatedJsonArb = fc
  .tuple(
    validEventArb,
    fc.oneof(
      fc.record({ kind: fc.constant("delete" as const), field: fieldArb }),
      fc.record({
        kind: fc.constant("set" as const),
        field: fieldArb,
        value: fc.oneof(
          fc.jsonValue({ maxDepth: 2 }),
          fc.constantFrom("", " ", "NaN", "-1", "1e400", "2024-13-45T99:99:99Z", "x".repeat(6000)),
        ),
      }),
    ),
  )
  .map(([e, m]) => {
    const o: Record<string, unknown> = { ...e };
    if (m.kind === "delete") delete o[m.field];
    else Object.defineProperty(o, m.field, { value: m.value, enumerable: true });
    return o;
  });

/** Bytes cut, flipped or padded: mostly broken encodings of otherwise good events. */
const byteMutation = fc.oneof(
  fc.constant((b: Uint8Array) => b),
  fc.nat().map((n) => (b: Uint8Array) => b.subarray(0, n % (b.length + 1))),
  fc.tuple(fc.nat(), fc.integer({ min: 1, max: 255 })).map(([at, x]) => (b: Uint8Array) => {
    const c = Uint8Array.from(b);
    if (c.length > 0) c[at % c.length]! ^= x;
    return c;
  }),
  fc.uint8Array({ minLength: 1, maxLength: 8 }).map((tail) => (b: Uint8Array) => {
    const c = new Uint8Array(b.length + tail.length);
    c.set(b);
    c.set(tail, b.length);
    return c;
  }),
);

const protobufArb = fc
  .record({
    eventId: fc.oneof(
      fc
        .integer({ min: 0, max: 30 })
        .map((n) => `00000000-0000-4000-8000-${String(n).padStart(12, "0")}`),
      fc.string({ maxLength: 40 }),
    ),
    eventType: fc.integer({ min: -2, max: 9 }),
    eventTs: fc.oneof(
      fc.integer({ min: 0, max: 48 * 60 }).map((m) => new Date(T0 + m * 60_000).toISOString()),
      fc.string({ maxLength: 30 }),
      fc.constantFrom("", "99999999999999999999", String(T0)),
    ),
    userId: fc.string({ maxLength: 140 }),
    itemId: fc.string({ maxLength: 12 }),
    price: fc.option(fc.double(), { nil: undefined }),
    rating: fc.option(fc.double(), { nil: undefined }),
    reviewText: fc.option(fc.string({ maxLength: 20 }), { nil: undefined }),
  })
  .map((f) => toBinary(ClickEventSchema, create(ClickEventSchema, f)));

const messageArb: fc.Arbitrary<Omit<InputMessage, "seq">> = fc.oneof(
  // Random bytes with any headers.
  fc.record({
    subject: subjectArb,
    data: fc.uint8Array({ maxLength: 300 }),
    headers: headersArb,
  }),
  // Valid JSON events, often on their own subject: some are accepted, some duplicates.
  fc.tuple(validEventArb, fc.boolean(), byteMutation).map(([e, ownSubject, mutate]) => ({
    subject: ownSubject ? `events.${e.event_type}` : "events.view",
    data: mutate(enc.encode(JSON.stringify(e))),
    headers: {},
  })),
  // Mutated JSON events.
  fc.tuple(mutatedJsonArb, subjectArb).map(([o, subject]) => ({
    subject: typeof o.event_type === "string" ? `events.${o.event_type}` : subject,
    data: enc.encode(JSON.stringify(o)),
    headers: {},
  })),
  // Protobuf events, some broken on the byte level.
  fc.tuple(protobufArb, subjectArb, byteMutation).map(([bytes, subject, mutate]) => ({
    subject,
    data: mutate(bytes),
    headers: { "Content-Type": PB },
  })),
);

describe("parse under fuzzing", () => {
  it("never throws and keeps in = accepted + dead-lettered + duplicates for random and mutated input", () => {
    let total = 0;
    const outcomes = { accepted: 0, duplicate: 0, bad: 0 };
    fc.assert(
      fc.property(fc.array(messageArb, { minLength: 10, maxLength: 40 }), (msgs) => {
        const { feed, counts } = harness();
        for (const m of msgs) feed(m);
        total += counts.in;
        outcomes.accepted += counts.accepted;
        outcomes.duplicate += counts.duplicate;
        outcomes.bad += counts.bad;
      }),
      { seed: 20_241_105, numRuns: 250 },
    );
    // Thousands of messages, and every outcome was exercised.
    expect(total).toBeGreaterThan(4000);
    expect(outcomes.accepted).toBeGreaterThan(100);
    expect(outcomes.duplicate).toBeGreaterThan(10);
    expect(outcomes.bad).toBeGreaterThan(1000);
  });

  it("dead-letters thousands of random byte strings, each with a reason", () => {
    const { feed, counts } = harness();
    fc.assert(
      fc.property(
        fc.uint8Array({ maxLength: 4096 }),
        headersArb,
        subjectArb,
        (data, headers, subject) => {
          feed({ subject, data, headers });
        },
      ),
      { seed: 5, numRuns: 3000 },
    );
    expect(counts.in).toBe(3000);
    expect(counts.bad).toBe(3000);
  });
});
