import { map, tap } from "rxjs";
import { defineStage, port, type InputBatch, type StageContext } from "../../runtime/index.js";
import type { ParsedRecord } from "../contract/index.js";
import {
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
}

export interface HistoryView {
  history(): HistorySource;
  /** The prequential scorer's tallies, when it runs here. */
  prequential(): PrequentialView | undefined;
}

export const historyStage = defineStage({
  name: "history",
  input: port<ParsedRecord>(),
  ports: {},
  create: (ctx: StageContext<HistoryStageSettings>) => {
    const s = ctx.settings;
    const history = createHistory(
      { preset: s.preset, halfLifeMs: s.halfLifeMs, maxItemsPerUser: s.maxItemsPerUser },
      // MessagePack bytes, not JSON text (sources/history-bytes.ts: ~30 B for one item, not ~45).
      ctx.state.map<UserHistory>("users", { codec: historyCodec }),
    );
    const scorer = s.scorer ? createPrequentialScorer(s.scorer, ctx.state, history) : undefined;
    const view: HistoryView = { history: () => history, prequential: () => scorer?.view };
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
          tap((batch) => {
            for (const r of batch.records) {
              const e = sourceEventOf(r, s.preset);
              scorer?.before(r, e);
              history.add(e);
            }
            scorer?.settle(batch);
          }),
          map(() => ({})),
        ),
      view,
    };
  },
});
