import { createStageState, type StageStateInternal } from "../../state/store.js";
import type { InputMessage } from "../../actors/host/index.js";
import {
  IDLE_SUBJECT,
  readIdleMarker,
  type ConsumerView,
  type ParseOptions,
} from "../../actors/stages/index.js";
import { createParseHandler } from "../../actors/plan/index.js";
import { HOUR } from "../../actors/contract/index.js";
import { fakeOutput, type RawCall } from "./stage.js";

/*
 * Parse's idle markers (test/idle-*.test.ts): a parse handler on an injected clock with a probe
 * that answers what the test says, and events and markers as parse reads them from EVENTS.
 */

export const enc = new TextEncoder();
export const T0 = Date.UTC(2026, 10, 21, 10, 0, 0);
export const TIMEOUT = 30_000;
/** The engine's idle-marker key (only markers it signed count). */
const MARKER_KEY = enc.encode("a test key of the engine");

let idCounter = 0;
export const uuid = () => `00000000-0000-4000-8000-${(++idCounter).toString(16).padStart(12, "0")}`;

export function eventMsg(seq: number, ts: number, type = "view"): InputMessage {
  const ev = { event_id: uuid(), event_type: type, event_ts: ts, user_id: "u1", item_id: "p1" };
  return { seq, subject: `events.${type}`, data: enc.encode(JSON.stringify(ev)), headers: {} };
}

/** A parse handler on an injected clock, with a probe that answers what the test says. */
export function setup(
  opts: Partial<ParseOptions> = {},
  state: StageStateInternal = createStageState(),
) {
  const { out, rec } = fakeOutput();
  let now = 1_000_000;
  let server: ConsumerView | Error = { pending: 0, delivered: 0, ackFloor: 0, waiting: 1 };
  let probes = 0;
  let seq = 0;
  const inputs: InputMessage[] = []; // the log as EVENTS holds it
  const h = createParseHandler(state, out, {
    partitions: 2,
    preset: "ecommerce",
    dedupeHorizonMs: 26 * HOUR,
    dedupeMaxIds: 10_000,
    maxEventBytes: 65_536,
    broadcastEveryMs: 100,
    clock: () => now,
    markerKey: MARKER_KEY,
    idle: {
      timeoutMs: TIMEOUT,
      probe: async () => {
        probes++;
        if (server instanceof Error) throw server;
        return { ...server };
      },
    },
    ...opts,
  });
  const t = {
    h,
    rec,
    state,
    get probes() {
      return probes;
    },
    get seq() {
      return seq;
    },
    now: () => now,
    /** The server's answer to the next probes. */
    server(v: Partial<ConsumerView> | Error) {
      server =
        v instanceof Error ? v : { pending: 0, delivered: seq, ackFloor: 0, waiting: 1, ...v };
    },
    inputs,
    /** An event at the next stream sequence; the server has delivered it. */
    event(ts: number) {
      t.input(eventMsg(seq + 1, ts));
    },
    /** Any message at the next stream sequence (a marker read back, say). */
    input(msg: Omit<InputMessage, "seq">) {
      seq++;
      inputs.push({ ...msg, seq });
      h.handle({ ...msg, seq }, 0);
      if (!(server instanceof Error)) server = { ...server, delivered: seq };
    },
    /** Lets processing time pass in ticks of 100 ms, letting probe answers arrive in between. */
    async pass(ms: number) {
      for (let k = 0; k < ms / 100; k++) {
        now += 100;
        h.tick!();
        await new Promise((r) => setImmediate(r));
      }
    },
    markers: () =>
      rec.raws
        .filter((r) => r.subject === IDLE_SUBJECT)
        .map((r) => ({ ...r, body: readIdleMarker(r.data)! })),
  };
  return t;
}

/** Lets a probe's answer reach the handler. */
export const answered = () => new Promise((r) => setImmediate(r));

/** A marker as parse reads it back from EVENTS at stream sequence `seq`. */
export const markerMsg = (raw: RawCall, seq: number): InputMessage => ({
  seq,
  subject: raw.subject,
  data: raw.data,
  headers: raw.headers,
});
