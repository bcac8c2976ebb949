import { map, tap } from "rxjs";
import {
  defineStage,
  port,
  type InputBatch,
  type StageContext,
  type ValueCodec,
} from "../../runtime/index.js";
import type { ParsedRecord } from "../contract/index.js";
import {
  createItemIds,
  itemEdgesCodec,
  type ItemIds,
  createCovisit,
  type SimilarItemsSource,
  sourceEventOf,
  createPopular,
  createTrending,
  type ItemCounter,
  userStores,
  type UserValue,
  userValueCodec,
} from "../sources/index.js";
import type { SourcePreset, SourceSettings } from "../sources/index.js";
import {
  createPrequentialScorer,
  type PrequentialScorer,
  type PrequentialSettings,
  type PrequentialView,
} from "./prequential-scorer.js";

/**
 * The item-keyed candidate sources as a stage (DESIGN §3.7, RANKER=blend): co-visitation (the
 * top K neighbours per item, each user's recent items), the trending and popular counters and
 * the items' categories. One instance, fed every partition's user-path records in EVENTS order
 * (merged-input.ts): a pair's weight and an item's count are float sums over many users' events,
 * so their order must be the events' own for a replay to give the same bits.
 *
 * State: the sources' own data, one key per item (neighbours bounded by 3K, a decayed total, two
 * counters, a category) and per user (the last `recentPerUser` items), loaded as it was at start.
 * Its progress (event time of the records fed, and of idle progress) is the clock of blended
 * answers.
 *
 * With `scorer`, the prequential scorer (DESIGN §7, prequential-scorer.ts) runs here too: fed the
 * same records in the same order, it scores each sampled case against this stage's co-visitation
 * and counters just before the record (they are exactly at that point here), and keeps its own
 * history of each user in the same per-user value as co-visitation's recent items
 * (user-stores.ts). The prequential stage's own copies of co-visitation and the counters (the
 * same work again: ~10% of the app's CPU in bench step 2) are gone, and one atomic snapshot
 * holds both, so a restart never finds the scorer at another point than the sources it reads.
 */
export interface CovisitStageSettings {
  preset: SourcePreset;
  sources: Pick<SourceSettings, "covisit" | "trending" | "popularHalfLifeMs">;
  /** The prequential scorer's settings, when it runs in this stage. */
  scorer?: PrequentialSettings;
  /**
   * The numbering of item ids its neighbour lists decode with; a new one by default. The blend's
   * replica (blend-replica.ts) creates this stage's view again over the same maps as they change
   * and keeps one numbering, so lists it decoded before stay valid for the new view.
   */
  ids?: ItemIds;
}

export interface CovisitView {
  covisit(): SimilarItemsSource;
  trending(): ItemCounter;
  popular(): ItemCounter;
  categoryOf(item: string): string | undefined;
  /** The average price over every event of the item that carried one; undefined: none did. */
  priceOf(item: string): number | undefined;
  /** Event-time progress of what was fed (-1 before any). */
  progress(): number;
  /** Records fed. */
  fed(): number;
  /** The prequential scorer's figures, when it runs here. */
  prequential(): PrequentialView | undefined;
}

export const covisitStage = defineStage({
  name: "covisit",
  input: port<ParsedRecord>(),
  ports: {},
  create: (ctx: StageContext<CovisitStageSettings>) => {
    const { preset, sources: s, scorer: scoring } = ctx.settings;
    const st = ctx.state;
    const ids = ctx.settings.ids ?? createItemIds();
    // Per user: recent items alone, or with the scorer's history (the same key, "recent"), as
    // bytes (user-value-bytes.ts; JSON text before, which still loads).
    const users = scoring
      ? userStores(st.map("recent", { codec: userValueCodec }))
      : {
          recent: st.map<NonNullable<UserValue["r"]>>("recent", {
            codec: userValueCodec as ValueCodec<NonNullable<UserValue["r"]>>,
          }),
        };
    const covisit = createCovisit(
      { preset, ...s.covisit },
      {
        edges: st.map("edges", { codec: itemEdgesCodec(ids) }),
        ids,
        mass: st.map("mass"),
        recent: users.recent,
      },
    );
    const anchors = st.map<number>("anchors");
    const trending = createTrending({
      halfLifeMs: s.trending.halfLifeMs,
      all: s.trending.all,
      store: { raw: st.map("trending"), anchors, anchorKey: "trending" },
    });
    const popular = createPopular(preset.isTarget, s.popularHalfLifeMs, {
      raw: st.map("popular"),
      anchors,
      anchorKey: "popular",
    });
    const clock = st.map<{ progress: number; n: number }>("clock");
    let { progress, n } = clock.get("t") ?? { progress: -1, n: 0 };
    const scorer: PrequentialScorer | undefined =
      scoring && "history" in users
        ? createPrequentialScorer(scoring, st, {
            covisit,
            trending,
            popular,
            users: users.history,
            clock: st.map<number>("preq-clock"),
            fedBefore: n,
          })
        : undefined;
    const categories = st.map<string>("categories");
    // Per item: [sum of prices, events that carried one], from events of any type.
    const prices = st.map<[number, number]>("prices");
    const view: CovisitView = {
      covisit: () => covisit,
      trending: () => trending,
      popular: () => popular,
      categoryOf: (i) => categories.get(i),
      priceOf: (i) => {
        const p = prices.get(i);
        return p && p[1] > 0 ? p[0] / p[1] : undefined;
      },
      progress: () => progress,
      fed: () => n,
      prequential: () => scorer?.view,
    };
    /** The per-record loop: every source's counts, in EVENTS order. */
    const feed = ({ records }: InputBatch<ParsedRecord>) => {
      for (const r of records) {
        const e = sourceEventOf(r, preset);
        scorer?.before(r, e);
        covisit.add(e);
        trending.add(e);
        popular.add(e);
        scorer?.after(r, e);
        if (e.c !== "" && categories.get(e.i) !== e.c) categories.set(e.i, e.c);
        if (r.pr >= 0) {
          const [sum, k] = prices.get(r.i) ?? [0, 0];
          prices.set(r.i, [sum + r.pr, k + 1]);
        }
        progress = Math.max(progress, r.wb, r.ts);
      }
    };
    /** The clock of blended answers: records fed and their event time, kept with the state. */
    const tick = (batch: InputBatch<ParsedRecord>) => {
      const { records, progress: p } = batch;
      covisit.flush();
      scorer?.settle(batch);
      n += records.length;
      // Progress without records (idle markers): see merged-input.ts.
      if (records.length === 0) progress = Math.max(progress, p.to);
      clock.set("t", { progress, n });
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
