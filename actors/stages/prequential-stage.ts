import { map, tap } from "rxjs";
import { defineStage, port, type InputBatch, type StageContext } from "../../runtime/index.js";
import type { ParsedRecord } from "../contract/index.js";
import { createPrequentialScorer, type PrequentialSettings } from "./prequential-scorer.js";
import {
  createItemIds,
  itemEdgesCodec,
  createCovisit,
  sourceEventOf,
  createPopular,
  createTrending,
} from "../sources/index.js";
import type { UserHistory } from "../sources/index.js";

export {
  SCORED_SOURCES,
  sampled,
  scoredMethods,
  type PrequentialSettings,
  type PrequentialView,
} from "./prequential-scorer.js";

/**
 * The prequential stage: the scorer (prequential-scorer.ts) in an instance of its own, with its
 * own copies of co-visitation and the trending and popular counters, fed here in input order
 * after each record is scored. It runs only where the covisit stage does not (RANKER=design with
 * A/B arms that all rank by the design); where the covisit stage runs, the scorer runs inside it
 * and reads its sources (covisit-stage.ts): one copy of co-visitation instead of two.
 */
/**
 * The prequential stage snapshots every this many SNAPSHOT_INTERVALs (StageSpec.snapshotIntervals):
 * it has no outputs and no answer waits for it after a restart, and each snapshot rewrites its
 * copies of the sources' changed keys (a hot item's neighbour list whole), which at every
 * interval was ~17% of its CPU (bench/sources-micro.ts, a delta every 20k against every 100k
 * events). A restart replays up to this many intervals of input; the figures stay exact.
 */
export const PREQUENTIAL_SNAPSHOT_INTERVALS = 5;

export const prequentialStage = defineStage({
  name: "prequential",
  input: port<ParsedRecord>(),
  ports: {},
  create: (ctx: StageContext<PrequentialSettings>) => {
    const o = ctx.settings;
    const st = ctx.state;
    const ids = createItemIds();
    const covisit = createCovisit(
      { preset: o.preset, ...o.sources.covisit },
      {
        edges: st.map("edges", { codec: itemEdgesCodec(ids) }),
        ids,
        mass: st.map("mass"),
        recent: st.map("recent", { text: true }),
      },
    );
    const anchors = st.map<number>("anchors");
    const trending = createTrending({
      halfLifeMs: o.sources.trending.halfLifeMs,
      all: o.sources.trending.all,
      store: { raw: st.map("trending"), anchors, anchorKey: "trending" },
    });
    const popular = createPopular(o.preset.isTarget, o.sources.popularHalfLifeMs, {
      raw: st.map("popular"),
      anchors,
      anchorKey: "popular",
    });
    const scorer = createPrequentialScorer(o, st, {
      covisit,
      trending,
      popular,
      users: st.map<UserHistory>("users", { text: true }),
      clock: st.map<number>("clock"),
    });
    /** The per-record loop: each record scored (if a case), then fed to every copy. */
    const feed = ({ records }: InputBatch<ParsedRecord>) => {
      for (const r of records) {
        const e = sourceEventOf(r, o.preset);
        scorer.before(r, e);
        covisit.add(e);
        trending.add(e);
        popular.add(e);
        scorer.after(r, e);
      }
    };
    const settle = (batch: InputBatch<ParsedRecord>) => {
      covisit.flush();
      scorer.settle(batch);
    };
    return {
      operator: (batches$) =>
        batches$.pipe(
          tap(feed),
          tap(settle),
          map(() => ({})),
        ),
      view: scorer.view,
    };
  },
});
