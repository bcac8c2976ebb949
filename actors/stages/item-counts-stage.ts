import { map, tap } from "rxjs";
import { defineStage, port, type InputBatch, type StageContext } from "../../runtime/index.js";
import type { ParsedRecord } from "../contract/index.js";
import {
  sourceEventOf,
  createPopular,
  createTrending,
  type CounterPart,
  type RawCount,
  type SourcePreset,
  type SourceSettings,
} from "../sources/index.js";

/**
 * The blend's item counters as a stage (DESIGN §3.7, RANKER=blend): TRENDING's and
 * POPULAR_FALLBACK's decayed counts, each item's category and average price. One instance per
 * item partition, fed that partition's item hops (`reco.items.<q>`): an item's events arrive in
 * EVENTS order, and each count is a sum over that item's events alone, so the stage is exact
 * under replay without any merge, and serving reads the partitions together (trending.ts
 * mergeCounters: the bits one counter of every item would give).
 *
 * State: one key per item and counter, the counters' anchors, each item's category and price
 * sums, and the EVENTS sequence of the newest record fed. In memory only, for the prequential
 * scorer (which scores a case just before its event, while this stage may have counted it
 * already): the counts each of the last LAST_KEPT records' items had before it.
 */
export interface ItemCountsStageSettings {
  preset: SourcePreset;
  sources: Pick<SourceSettings, "trending" | "popularHalfLifeMs">;
}

export interface ItemCountsView {
  trending(): CounterPart;
  popular(): CounterPart;
  categoryOf(item: string): string | undefined;
  /** The average price over every event of the item that carried one; undefined: none did. */
  priceOf(item: string): number | undefined;
  /** EVENTS sequence of the newest record fed (-1: none yet). */
  seq(): number;
  /**
   * The item's counts just before its record at EVENTS sequence `s`, for each counter that
   * record changed (none: not counted yet, or counted by neither); undefined when that is no
   * longer known (a later record of the item counted since, or a restart).
   */
  before(item: string, s: number): ItemBefore | undefined;
}

/** An item's counts before one of its records, per counter that the record changed. */
export interface ItemBefore {
  trending?: RawCount;
  popular?: RawCount;
}

/** Records whose items' counts before them are kept (the oldest are forgotten first). */
const LAST_KEPT = 8192;

/**
 * The counts each of the last LAST_KEPT records' items had before it, in a ring in EVENTS order
 * (typed arrays: nothing allocated per record). A count NaN: none before.
 */
function createLastCounts() {
  const seqs = new Float64Array(LAST_KEPT);
  const items: (string | undefined)[] = new Array<string | undefined>(LAST_KEPT);
  /** Per record and counter (trending, popular): the count before it and its anchor. */
  const raws = new Float64Array(2 * LAST_KEPT);
  const anchors = new Float64Array(2 * LAST_KEPT);
  /** Bit 1: trending counted the record; bit 2: popular did. */
  const counted = new Uint8Array(LAST_KEPT);
  let next = 0;
  let size = 0;
  const at = (k: number) => (next - size + k + LAST_KEPT) % LAST_KEPT;
  return {
    push(s: number, item: string, trending: RawCount | undefined, popular: RawCount | undefined) {
      seqs[next] = s;
      items[next] = item;
      counted[next] = (trending ? 1 : 0) | (popular ? 2 : 0);
      raws[2 * next] = trending?.raw ?? Number.NaN;
      anchors[2 * next] = trending?.anchor ?? Number.NaN;
      raws[2 * next + 1] = popular?.raw ?? Number.NaN;
      anchors[2 * next + 1] = popular?.anchor ?? Number.NaN;
      next = (next + 1) % LAST_KEPT;
      if (size < LAST_KEPT) size++;
    },
    /** The item's counts before record s, if it is kept and no later record of the item is. */
    before(item: string, s: number): ItemBefore | undefined {
      // The records are in EVENTS order: s by bisection.
      let lo = 0;
      let hi = size;
      while (lo < hi) {
        const mid = (lo + hi) >>> 1;
        if (seqs[at(mid)]! < s) lo = mid + 1;
        else hi = mid;
      }
      if (lo >= size || seqs[at(lo)] !== s || items[at(lo)] !== item) return undefined;
      for (let k = lo + 1; k < size; k++) if (items[at(k)] === item) return undefined;
      const x = at(lo);
      const count = (c: number): RawCount => {
        const raw = raws[2 * x + c]!;
        return { raw: Number.isNaN(raw) ? undefined : raw, anchor: anchors[2 * x + c]! };
      };
      return {
        ...(counted[x]! & 1 ? { trending: count(0) } : {}),
        ...(counted[x]! & 2 ? { popular: count(1) } : {}),
      };
    },
  };
}

export const itemCountsStage = defineStage({
  name: "item-counts",
  input: port<ParsedRecord>(),
  ports: {},
  create: (ctx: StageContext<ItemCountsStageSettings>) => {
    const { preset, sources: s } = ctx.settings;
    const st = ctx.state;
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
    const categories = st.map<string>("categories");
    // Per item: [sum of prices, events that carried one], from events of any type.
    const prices = st.map<[number, number]>("prices");
    const clock = st.map<number>("clock");
    let seq = clock.get("s") ?? -1;
    const last = createLastCounts();
    const view: ItemCountsView = {
      trending: () => trending,
      popular: () => popular,
      categoryOf: (i) => categories.get(i),
      priceOf: (i) => {
        const p = prices.get(i);
        return p && p[1] > 0 ? p[0] / p[1] : undefined;
      },
      seq: () => seq,
      before: (item, s) => (seq < s ? {} : last.before(item, s)),
    };
    const feed = ({ records, position }: InputBatch<ParsedRecord>) => {
      for (const r of records) {
        // Records parse sends again after its own restart, already counted here.
        if (r.s <= position.from) continue;
        const e = sourceEventOf(r, preset);
        const t = trending.changes();
        const p = popular.changes();
        trending.add(e);
        popular.add(e);
        last.push(
          r.s,
          e.i,
          trending.changes() !== t ? trending.last : undefined,
          popular.changes() !== p ? popular.last : undefined,
        );
        if (e.c !== "" && categories.get(e.i) !== e.c) categories.set(e.i, e.c);
        if (r.pr >= 0) {
          const [sum, k] = prices.get(r.i) ?? [0, 0];
          prices.set(r.i, [sum + r.pr, k + 1]);
        }
        seq = r.s;
      }
      if (records.length > 0) clock.set("s", seq);
    };
    return {
      operator: (batches$) =>
        batches$.pipe(
          tap(feed),
          map(() => ({})),
        ),
      view,
    };
  },
});
