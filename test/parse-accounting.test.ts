import { describe, expect, it } from "vitest";
import { create, toBinary } from "@bufbuild/protobuf";
import { Registry } from "prom-client";
import { ClickEventSchema, EventType } from "../proto/gen/reco/v1/reco_pb.js";
import { createStageState } from "../state/store.js";
import type { InputMessage, StageOutput } from "../actors/host/index.js";
import type { ParseCounters, ParseOptions } from "../actors/stages/index.js";
import { createParseHandler } from "../actors/plan/index.js";
import { createMetrics } from "../connectors/http/metrics.js";

/** Parse's accounting, its dead letters' headers, and its last progress broadcast. */

const enc = new TextEncoder();
const T0 = Date.UTC(2024, 0, 1, 10);
let n = 0;
const id = () => `00000000-0000-4000-8000-${(++n).toString(16).padStart(12, "0")}`;

function setup(opts: Partial<ParseOptions> = {}) {
  const raws: { headers: Record<string, string> }[] = [];
  const touches: string[] = [];
  let now = 0;
  const counts = { in: 0, accepted: 0, duplicate: 0, bad: 0 };
  const counters: ParseCounters = {
    received: (k) => void (counts.in += k),
    accepted: (k) => void (counts.accepted += k),
    duplicate: (k) => void (counts.duplicate += k),
    bad: () => void (counts.bad += 1),
  };
  const out = {
    emit: () => undefined,
    touch: (s: string) => void touches.push(s),
    setProgress: () => undefined,
    raw: (_s: string, _d: Uint8Array, headers: Record<string, string>) =>
      void raws.push({ headers }),
    kvPut: () => undefined,
    count: () => undefined,
  } as StageOutput;
  const h = createParseHandler(createStageState(), out, {
    partitions: 2,
    preset: "ecommerce",
    dedupeHorizonMs: 3_600_000,
    dedupeMaxIds: 100,
    maxEventBytes: 4096,
    broadcastEveryMs: 100,
    counters,
    clock: () => now,
    ...opts,
  });
  let seq = 0;
  const handle = (m: Omit<InputMessage, "seq">) => h.handle({ ...m, seq: ++seq }, 0);
  return { h, handle, raws, touches, counts, setNow: (t: number) => void (now = t) };
}

const view = (o: Record<string, unknown> = {}) => ({
  subject: "events.view",
  data: enc.encode(
    JSON.stringify({
      event_id: id(),
      event_type: "view",
      event_ts: T0,
      user_id: "u",
      item_id: "i",
      ...o,
    }),
  ),
  headers: {},
});

describe("parse accounting", () => {
  it("counts every message in, and each once as accepted, duplicate or dead-lettered", () => {
    const s = setup();
    const first = view();
    s.handle(first);
    s.handle(first); // duplicate
    s.handle({ ...view(), subject: "events.click" }); // subject mismatch
    s.handle({ subject: "events.view", data: enc.encode("{"), headers: {} }); // bad JSON
    s.handle({ subject: "events.view", data: new Uint8Array(5000), headers: {} }); // too large
    expect(s.counts).toEqual({ in: 5, accepted: 1, duplicate: 1, bad: 3 });
  });

  it("feeds reco_events_in_total when wired to the metrics", async () => {
    const metrics = createMetrics(new Registry());
    const s = setup({
      counters: {
        received: (k) => metrics.received.inc(k),
        accepted: (k) => metrics.accepted.inc(k),
        duplicate: (k) => metrics.duplicates.inc(k),
        bad: (reason) => metrics.bad.inc({ reason }),
      },
    });
    s.handle(view());
    s.handle({ subject: "events.view", data: enc.encode("nope"), headers: {} });
    const text = await metrics.registry.metrics();
    expect(text).toMatch(/^reco_events_in_total 2$/m);
    expect(text).toMatch(/^reco_events_accepted_total 1$/m);
    expect(text).toMatch(/^reco_events_dead_lettered_total\{reason="bad_json"\} 1$/m);
  });
});

describe("parse dead letters", () => {
  it("keeps JetStream control headers of the original under Reco-Orig-, so the dead letter's publish cannot fail on them", () => {
    const s = setup();
    s.handle({
      subject: "events.view",
      data: enc.encode("{"),
      headers: {
        "Nats-Msg-Id": "m1",
        "Nats-Expected-Stream": "EVENTS",
        "Nats-Expected-Last-Sequence": "41",
        "nats-rollup": "all",
        "X-Trace": "t1",
        "Reco-Reason": "forged",
      },
    });
    expect(s.raws[0]!.headers).toEqual({
      "Nats-Msg-Id": "m1", // replaced by the dead letter's own id when published
      "Reco-Orig-Nats-Expected-Stream": "EVENTS",
      "Reco-Orig-Nats-Expected-Last-Sequence": "41",
      "Reco-Orig-nats-rollup": "all",
      "X-Trace": "t1",
      "Reco-Reason": "bad_json",
      "Reco-Subject": "events.view",
      "Reco-Seq": "1",
    });
  });

  it("reads Content-Type whatever the case of the header name", () => {
    const s = setup();
    const pb = toBinary(
      ClickEventSchema,
      create(ClickEventSchema, {
        eventId: id(),
        eventType: EventType.VIEW,
        eventTs: String(T0),
        userId: "u",
        itemId: "i",
      }),
    );
    for (const name of ["Content-Type", "content-type", "CONTENT-TYPE"])
      s.handle({ subject: "events.view", data: pb, headers: { [name]: "application/protobuf" } });
    expect(s.counts).toMatchObject({ accepted: 1, duplicate: 2, bad: 0 });
  });
});

describe("parse progress broadcast when input stops", () => {
  it("sends the last progress to idle partitions on tick, once", () => {
    const s = setup();
    s.setNow(1000);
    s.handle(view({ event_ts: T0 })); // broadcast
    s.touches.length = 0;
    s.setNow(1050);
    s.handle(view({ event_ts: T0 + 1 })); // progress moved, too soon to broadcast
    expect(s.touches).toEqual([]);
    // Then nothing more arrives: the tick carries the last progress out.
    s.setNow(1100);
    s.h.tick!();
    expect([...s.touches].sort()).toEqual([
      "reco.items.0",
      "reco.items.1",
      "reco.parse.0",
      "reco.parse.1",
    ]);
    s.touches.length = 0;
    s.setNow(5000);
    s.h.tick!();
    expect(s.touches).toEqual([]);
  });
});
