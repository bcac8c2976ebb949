import { map } from "rxjs";
import { defineStage, port, type InputBatch, type StageContext } from "../../runtime/index.js";
import { partitionOf, type PairRecord, type ParsedRecord } from "../contract/index.js";
import {
  createCovisitUsers,
  type CovisitOptions,
  recentStore,
  userValueCodec,
  sourceEventOf,
  createHistory,
  type HistorySource,
  type UserHistory,
  historyCodec,
} from "../sources/index.js";
import type { SourcePreset } from "../sources/index.js";
import {
  createPrequentialScorer,
  type PrequentialSettings,
  type PrequentialView,
} from "./prequential-scorer.js";

/**
 * The history source as a stage (DESIGN §3.7, RANKER=blend): one instance per user partition,
 * fed that partition's user-path hops (`reco.parse.<p>`). Its state is the source's own data, one
 * key per user (their remembered items, at most `maxItemsPerUser` + 25% each), snapshotted by
 * the host and loaded at start as it was. A user's history depends only on that user's events in
 * their order, which their partition keeps, so the stage is exact under replay without any
 * merge. Serving reads it (view) between batches.
 *
 * With `covisit`, the user side of co-visitation runs here too (covisit.ts createCovisitUsers):
 * each user's recent items, and for each event the items it pairs with, sent on `pairs` to the
 * item partitions that hold them (a PairRecord per event and partition, to the covisit stage of
 * that partition). After each batch it sends every item partition a mark: the input position its
 * records so far are complete to (the EVENTS sequence of the hops read) and the event-time
 * progress. A covisit stage feeds a record once every user partition has marked past it, so
 * marks to every partition, whether any event concerns it or not, keep each one moving.
 *
 * With `scorer`, the prequential scorer (DESIGN §7, prequential-scorer.ts) runs here too: each
 * sampled case is scored against the serving path's answer just before this stage feeds the
 * record to the history, and its tallies are in this stage's snapshot.
 */
export interface HistoryStageSettings {
  preset: SourcePreset;
  halfLifeMs: number;
  maxItemsPerUser: number;
  /** The prequential scorer's settings, when online quality scores this partition's users. */
  scorer?: PrequentialSettings;
  /** Co-visitation's user side, and the number of item partitions its pairs go to. */
  covisit?: { options: CovisitOptions; partitions: number };
}

/** A record for the covisit stage of item partition `q`. */
export interface PairsTo {
  q: number;
  rec: PairRecord;
}

export interface HistoryView {
  history(): HistorySource;
  /** The prequential scorer's tallies, when it runs here. */
  prequential(): PrequentialView | undefined;
}

export const historyStage = defineStage({
  name: "history",
  input: port<ParsedRecord>(),
  ports: { pairs: port<PairsTo>() },
  create: (ctx: StageContext<HistoryStageSettings>) => {
    const s = ctx.settings;
    const history = createHistory(
      { preset: s.preset, halfLifeMs: s.halfLifeMs, maxItemsPerUser: s.maxItemsPerUser },
      // MessagePack bytes, not JSON text (sources/history-bytes.ts: ~30 B for one item, not ~45).
      ctx.state.map<UserHistory>("users", { codec: historyCodec }),
    );
    const scorer = s.scorer ? createPrequentialScorer(s.scorer, ctx.state, history) : undefined;
    const view: HistoryView = { history: () => history, prequential: () => scorer?.view };
    const pairs = s.covisit && pairsOf(s.covisit, s.preset, ctx);
    /** The batch's records not fed before a restart (parse re-sends after its own snapshot). */
    const fresh = (batch: InputBatch<ParsedRecord>): InputBatch<ParsedRecord> => {
      const { records, position } = batch;
      return records.length === 0 || records[0]!.s > position.from
        ? batch
        : { ...batch, records: records.filter((r) => r.s > position.from) };
    };
    return {
      operator: (batches$) =>
        batches$.pipe(
          map(fresh),
          // The per-record loop: each user's items, decayed by event time.
          map((batch) => {
            const out: PairsTo[] = [];
            for (const r of batch.records) {
              const e = sourceEventOf(r, s.preset);
              scorer?.before(r, e);
              history.add(e);
              pairs?.add(r, e, out);
            }
            scorer?.settle(batch);
            if (!pairs) return {};
            pairs.mark(batch, out);
            return { pairs: out };
          }),
        ),
      view,
    };
  },
});

/** Co-visitation's user side in a history stage: each event's records for the item partitions. */
function pairsOf(
  c: NonNullable<HistoryStageSettings["covisit"]>,
  preset: SourcePreset,
  ctx: StageContext<HistoryStageSettings>,
) {
  const Q = c.partitions;
  const users = createCovisitUsers(
    { ...c.options, preset },
    { recent: recentStore(ctx.state.map("covisit-recent", { codec: userValueCodec })) },
  );
  const qOf = (item: string) => partitionOf(item, Q);
  const NONE: readonly never[] = [];
  return {
    add(r: ParsedRecord, e: ReturnType<typeof sourceEventOf>, out: PairsTo[]) {
      const t = users.together(e);
      const own = qOf(r.i);
      // The event's own partition always hears of it (its item's counters count every event).
      out.push({
        q: own,
        rec: {
          s: r.s,
          i: r.i,
          ts: r.ts,
          n: t?.items ?? NONE,
          w: t?.weights ?? NONE,
          e: { t: e.t, c: r.c, r: r.r, pr: r.pr, wb: r.wb },
        },
      });
      if (!t || t.items.length === 0) return;
      // The links back, to every other partition holding some of the items, in partition order.
      const back: ({ n: string[]; w: number[] } | undefined)[] = new Array(Q);
      for (let x = 0; x < t.items.length; x++) {
        const q = qOf(t.items[x]!);
        if (q === own) continue;
        const b = (back[q] ??= { n: [], w: [] });
        b.n.push(t.items[x]!);
        b.w.push(t.weights[x]!);
      }
      for (let q = 0; q < Q; q++) {
        const b = back[q];
        if (b) out.push({ q, rec: { s: r.s, i: r.i, ts: r.ts, n: b.n, w: b.w } });
      }
    },
    /** The batch's mark, to every item partition, after its records. */
    mark(batch: InputBatch<ParsedRecord>, out: PairsTo[]) {
      for (let q = 0; q < Q; q++)
        out.push({
          q,
          rec: { s: batch.position.upTo, i: "", ts: -1, n: NONE, w: NONE, p: batch.progress.to },
        });
    },
  };
}
