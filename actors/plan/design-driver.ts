import type { Recommendations, ParsedRecord } from "../contract/index.js";
import { encodeEnvelope } from "../host/index.js";
import type { InputMessage, StageOutput } from "../host/index.js";
import {
  answerFor,
  type ProfileRecord,
  createJoinHandler,
  createPopularityTable,
  type PopularityRow,
} from "../stages/index.js";
import { createInterestHandler } from "./handlers.js";
import { createPopularityHandler } from "./handlers.js";
import { createWindowHandler } from "./handlers.js";
import { createStageState } from "../../state/index.js";
import { designTaken } from "../serving/index.js";
import type { StageState } from "../../state/index.js";

/**
 * The DESIGN §3.4–3.6 ranking for `reco eval`, computed by the engine's own stage handlers
 * (window → interest-ranking → popularity-join, popularity → the popularity table, fallback's
 * `answerFor`) driven in memory: one partition, hop batches encoded and decoded as on NATS, no
 * server. What is left out: parse (the log is already normalised and deduplicated) and the
 * watermark stage (the log is fed in time order, so no event is late and it only forwards).
 */
export interface DesignSettings {
  preset: "ecommerce" | "movies";
  windowMs: number;
  userOutOfOrdernessMs: number;
  interestHorizonMs: number;
  popularityHorizonMs: number;
  topCategories: number;
  fallbackSize: number;
}

export const DESIGN_DEFAULTS: Omit<DesignSettings, "preset"> = {
  windowMs: 300_000,
  userOutOfOrdernessMs: 600_000,
  interestHorizonMs: 86_400_000,
  popularityHorizonMs: 604_800_000,
  topCategories: 3,
  fallbackSize: 10,
};

/**
 * Where the driver keeps its state: in memory (eval), or in given stage states (a test's, which
 * snapshots them): the four handlers' states and the popularity table's rows.
 */
export interface DesignStores {
  state(name: "window" | "interest" | "join" | "popularity"): StageState;
  table: {
    get(key: string): unknown;
    set(key: string, v: unknown): void;
    entries(): IterableIterator<[string, unknown]>;
  };
}

export interface DesignDriver {
  /** Feeds events in time order (normalised interactions; ratings as they came). */
  feed(batch: readonly Omit<ParsedRecord, "s" | "wb">[]): void;
  /** What GetRecommendations(user, n) answers now. */
  answer(user: string, n: number): Recommendations;
  profile(user: string): ProfileRecord | undefined;
  /** Whether the user's answer may already count an event of `item` at `ts` (designTaken). */
  taken(user: string, item: string, ts: number): boolean;
}

/** A StageOutput that keeps the records of the current input for the next stage. */
function collector(onKv?: (value: unknown, key: string) => void) {
  let recs: unknown[] = [];
  let progress = -1;
  const out: StageOutput = {
    emit: (_subject, record) => void recs.push(record),
    touch: () => undefined,
    setProgress: (wm) => void (progress = wm),
    raw: () => undefined, // late events: none in a time-ordered feed
    kvPut: (_bucket, key, value) => onKv?.(value, key),
    count: () => undefined,
  };
  return {
    out,
    take(): { recs: unknown[]; wm: number } {
      const r = { recs, wm: progress };
      recs = [];
      return r;
    },
  };
}

export function createDesignDriver(s: DesignSettings, stores?: DesignStores): DesignDriver {
  const mem = [createStageState(), createStageState(), createStageState(), createStageState()];
  const [wState, iState, jState, pState] = stores
    ? [
        stores.state("window"),
        stores.state("interest"),
        stores.state("join"),
        stores.state("popularity"),
      ]
    : mem;
  const states = stores ? [] : mem;
  const table = createPopularityTable();
  for (const [, row] of stores?.table.entries() ?? []) table.apply(row as PopularityRow);
  const wOut = collector();
  const iOut = collector();
  const pOut = collector((row, key) => {
    table.apply(row as PopularityRow);
    stores?.table.set(key, row);
  });
  const window = createWindowHandler(wState, wOut.out, {
    partition: 0,
    sizeMs: s.windowMs,
    outOfOrdernessMs: s.userOutOfOrdernessMs,
  });
  const interest = createInterestHandler(iState, iOut.out, {
    partition: 0,
    horizonMs: s.interestHorizonMs,
    windowMs: s.windowMs,
    topCategories: s.topCategories,
  });
  const join = createJoinHandler(jState, { purchaseExclusionMs: s.interestHorizonMs });
  const popularity = createPopularityHandler(pState, pOut.out, {
    partition: 0,
    horizonMs: s.popularityHorizonMs,
  });
  let seq = 0;
  let hop = 0;
  let progress = -1;
  const msg = (data: Uint8Array): InputMessage => ({ seq: ++hop, subject: "", data, headers: {} });

  return {
    feed(batch) {
      if (batch.length === 0) return;
      const recs: ParsedRecord[] = [];
      for (const e of batch) {
        // parse's movies preset: a rating of 4 or more is a purchase.
        const t = s.preset === "movies" && e.t === "rating" && e.r >= 4 ? "purchase" : e.t;
        recs.push({ ...e, t, s: ++seq, wb: progress });
        if (e.ts > progress) progress = e.ts;
      }
      const parsed = encodeEnvelope(seq, progress, recs);
      popularity.handle(msg(parsed), seq - recs.length);
      pOut.take();
      window.handle(msg(parsed), seq - recs.length);
      const w = wOut.take();
      interest.handle(msg(encodeEnvelope(hop, w.wm, w.recs)), hop - 1);
      const i = iOut.take();
      join.handle(msg(encodeEnvelope(hop, i.wm, i.recs)), hop - 1);
      for (const st of states) st.takeDelta(); // nothing snapshots: forget what is dirty
    },
    answer(user, n) {
      return answerFor(
        user,
        n,
        join.profile(user),
        table,
        { size: s.fallbackSize, score: 0.1, userOutOfOrdernessMs: s.userOutOfOrdernessMs },
        (_p, now) => join.candidates(user, table, now, n),
      );
    },
    profile: (user) => join.profile(user),
    taken: (user, item, ts) => designTaken(table.row(item), join.profile(user), item, ts),
  };
}
