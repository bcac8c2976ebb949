import { map, tap } from "rxjs";
import { defineStage, port, type InputBatch, type StageContext } from "../../runtime/index.js";
import type { ParsedRecord } from "../contract/index.js";
import {
  createItemIds,
  itemEdgesCodec,
  type ItemIds,
  createCovisit,
  type SimilarItemsSource,
  sourceEventOf,
  recentStore,
  userValueCodec,
} from "../sources/index.js";
import type { SourcePreset, SourceSettings } from "../sources/index.js";

/**
 * Co-visitation as a stage (DESIGN §3.7, RANKER=blend): the top K neighbours per item and each
 * user's recent items. One instance, fed every partition's user-path records in EVENTS order
 * (merged-input.ts): a pair's weight is a float sum over many users' events, so their order must
 * be the events' own for a replay to give the same bits. (The item counters, TRENDING's and
 * POPULAR_FALLBACK's, run per item partition: item-counts-stage.ts.)
 *
 * State: the source's own data, one key per item (neighbours bounded by 3K, a decayed total)
 * and per user (the last `recentPerUser` items), loaded as it was at start. Its progress (event
 * time of the records fed, and of idle progress) is the clock of blended answers.
 *
 * Each user's recent items are stored as bytes (user-value-bytes.ts); a value written when the
 * prequential scorer ran here (`{ r, h }`, with its copy of the user's history) reads as its
 * recent items, and the user's next write drops the history part (user-stores.ts recentStore).
 */
export interface CovisitStageSettings {
  preset: SourcePreset;
  sources: Pick<SourceSettings, "covisit">;
  /**
   * The numbering of item ids its neighbour lists decode with; a new one by default. The blend's
   * replica (blend-replica.ts) creates this stage's view again over the same maps as they change
   * and keeps one numbering, so lists it decoded before stay valid for the new view.
   */
  ids?: ItemIds;
}

export interface CovisitView {
  covisit(): SimilarItemsSource;
  /** Event-time progress of what was fed (-1 before any). */
  progress(): number;
  /** Records fed. */
  fed(): number;
  /** EVENTS sequence of the newest record fed (-1: none yet, or not known since the state's start). */
  seq(): number;
}

export const covisitStage = defineStage({
  name: "covisit",
  input: port<ParsedRecord>(),
  ports: {},
  create: (ctx: StageContext<CovisitStageSettings>) => {
    const { preset, sources: s } = ctx.settings;
    const st = ctx.state;
    const ids = ctx.settings.ids ?? createItemIds();
    // Per user: recent items, as bytes (user-value-bytes.ts; JSON text before, which still loads).
    const recent = recentStore(st.map("recent", { codec: userValueCodec }));
    const covisit = createCovisit(
      { preset, ...s.covisit },
      {
        edges: st.map("edges", { codec: itemEdgesCodec(ids) }),
        ids,
        mass: st.map("mass"),
        recent,
      },
    );
    // Maps of what ran here once and runs elsewhere now, dropped at the first snapshot after this
    // start: the prequential scorer's tallies (in the history stages now) and the item counters
    // (item-counts-stage.ts, per item partition).
    for (const name of [
      ...["preq", "preqCover", "preqItems", "preqCatalogue", "preq-clock"],
      ...["trending", "popular", "anchors", "categories", "prices"],
    ]) {
      const old = st.map(name);
      for (const k of [...old.keys()]) old.delete(k);
    }
    const clock = st.map<{ progress: number; n: number; s?: number }>("clock");
    const t = clock.get("t");
    let { progress, n } = t ?? { progress: -1, n: 0 };
    /** EVENTS sequence of the newest record fed (-1: none, or state from before it was kept). */
    let seq = t?.s ?? -1;
    const view: CovisitView = {
      covisit: () => covisit,
      progress: () => progress,
      fed: () => n,
      seq: () => seq,
    };
    /** The per-record loop: pairs and totals, in EVENTS order. */
    const feed = ({ records }: InputBatch<ParsedRecord>) => {
      for (const r of records) {
        covisit.add(sourceEventOf(r, preset));
        progress = Math.max(progress, r.wb, r.ts);
        seq = r.s;
      }
    };
    /** The clock of blended answers: records fed and their event time, kept with the state. */
    const tick = (batch: InputBatch<ParsedRecord>) => {
      const { records, progress: p } = batch;
      covisit.flush();
      n += records.length;
      // Progress without records (idle markers): see merged-input.ts.
      if (records.length === 0) progress = Math.max(progress, p.to);
      clock.set("t", { progress, n, s: seq });
    };
    return {
      operator: (batches$) =>
        batches$.pipe(
          tap(feed),
          tap(tick),
          map(() => ({})),
        ),
      view,
    };
  },
});
