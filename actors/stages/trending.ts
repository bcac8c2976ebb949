import { connect, filter, map, merge, tap, type Observable } from "rxjs";
import { defineStage, port, type InputBatch, type StageContext } from "../../runtime/index.js";
import type { ParsedRecord } from "../contract/index.js";
import type { LateCounter, LateRecord } from "./watermark.js";
import { HOUR, EVENT_TYPES, type EventType } from "../contract/index.js";
import type { AdaptedHandler } from "../host/index.js";
export type TrendingKind = "1h" | "24h";

/** A partition's top list for one window (KV bucket reco_trending, key "<kind>.<start>.<q>"). */
export interface TrendingPart {
  kind: TrendingKind;
  start: number;
  end: number;
  /**
   * [item, score, views, clicks, carts, purchases], score descending, ties by item id; at most
   * `topK`. Parts written before carts and purchases were counted have four entries.
   */
  items: TrendingPartItem[];
  final: boolean;
  wm: number;
}

export type TrendingPartItem =
  [string, number, number, number] | [string, number, number, number, number, number];

/**
 * TRENDING_WEIGHTS: the score weight of each event type. Only the types listed count (a weight of
 * 0 counts too, for views and clicks shown with a score of 0). Default: view 1, click 2.
 */
export type TrendingWeights = Partial<Record<EventType, number>>;

/** Heartbeat of a partition (key "wm.<q>"): its event-time progress, for the min over partitions. */
export interface TrendingHeartbeat {
  q: number;
  wm: number;
}

export interface TrendingSettings {
  /** Out-of-orderness of the 1 h windows (DESIGN: 2 h) and of the 24 h windows (26 h). */
  oneHourOutOfOrdernessMs: number;
  oneDayOutOfOrdernessMs: number;
  weights: TrendingWeights;
  /** Entries kept per partition and window (the gRPC maximum k). */
  topK: number;
}

export interface TrendingOptions extends TrendingSettings {
  partition: number;
  counters?: LateCounter;
}

export interface TrendingView {
  /** The partition's list for a window, computed now. */
  part(kind: TrendingKind, start: number): TrendingPart;
}

export type TrendingHandler = AdaptedHandler<TrendingView> & {
  /** Processing-time trigger: publish the newest windows if they changed. */
  tick(): void;
};

const DAY = 24 * HOUR;

/** The stage's outputs for one batch (ports `late`, `parts`, `heartbeat`). */
interface TrendingOutputs {
  late?: LateRecord[];
  parts?: TrendingPart[];
  heartbeat?: TrendingHeartbeat[];
}

/**
 * trending: interactions per item and event type in 1 h tumbling windows and 24 h windows
 * sliding by 1 h, score = Σ weight(type) × count(type) over the types TRENDING_WEIGHTS lists
 * (default views × 1.0 + clicks × 2.0; REES46 has no clicks, so carts and purchases can count).
 * Each partition emits its top list of the newest windows on the processing-time trigger and a
 * final list when progress closes a window (`parts`), and its progress as a heartbeat; the
 * gateway merges partitions (items are disjoint, so the merged top k is exact). Records behind a
 * window kind's watermark go to `late`, once per kind.
 */
export const trendingStage = defineStage({
  name: "trending",
  input: port<ParsedRecord>(),
  ports: {
    late: port<LateRecord>(),
    parts: port<TrendingPart>(),
    heartbeat: port<TrendingHeartbeat>(),
  },
  trigger: "processing-time",
  create(ctx: StageContext<TrendingSettings & { partition: number }>) {
    const opts = ctx.settings;
    // Cell keys (cellKey) -> counts by EVENT_TYPES index (views, clicks, carts, ...; older
    // snapshots hold views and clicks only); 1h and 24h paths accept different lateness.
    const cells = ctx.state.map<number[]>("cell");
    const counted = new Set<string>(Object.keys(opts.weights));
    const weightOf = EVENT_TYPES.map((t) => opts.weights[t] ?? 0);
    const byHour = new Map<string, Set<string>>(); // "<kind>|<hour start>" -> keys
    /** The keys of a kind's hour (created empty). */
    const hourKeys = (kind: TrendingKind, h: number) => {
      const hk = `${kind}|${h}`;
      let s = byHour.get(hk);
      if (!s) byHour.set(hk, (s = new Set()));
      return s;
    };
    const index = (k: string) => {
      const at = k.indexOf("|", 2);
      hourKeys(k[0] === "h" ? "1h" : "24h", Number(k.slice(2, at)) * HOUR).add(k);
    };
    // Cells of the layout before ("<kind>|<hour start>|<item>") in this one: the next snapshot
    // writes them once.
    for (const k of [...cells.keys()]) {
      if (k[0] === "h" || k[0] === "d") continue;
      const a = k.indexOf("|");
      const b = k.indexOf("|", a + 1);
      const to = cellKey(k.slice(0, a) as TrendingKind, Number(k.slice(a + 1, b)), k.slice(b + 1));
      const c = cells.get(k)!;
      cells.delete(k);
      cells.set(to, c);
    }
    for (const k of cells.keys()) index(k);
    // Ends of the newest final windows, snapshotted with the cells.
    const final1hValue = ctx.state.value<number>("final1h");
    const final24hValue = ctx.state.value<number>("final24h");
    let final1h = Number(final1hValue.get() ?? -1);
    let final24h = Number(final24hValue.get() ?? -1);
    let progress = -1; // the last batch's progress (the host restores it with the state)
    const dirty = new Set<string>(); // "<kind>|<start>" changed since the last trigger
    let beat = -1; // progress of the last heartbeat (in memory: a restart sends one again)

    /** Whether every cell the last sumHours read held multiples of a half only. */
    let summedHalves = true;
    const sumHours = (kind: TrendingKind, from: number, to: number) => {
      const acc = new Map<string, number[]>();
      summedHalves = true;
      for (let h = from; h < to; h += HOUR) {
        const keys = byHour.get(`${kind}|${h}`);
        if (!keys) continue;
        for (const k of keys) {
          const c = cells.get(k);
          if (!c) continue;
          if (summedHalves && !halfUnits(c)) summedHalves = false;
          const item = k.slice(k.indexOf("|", k.indexOf("|") + 1) + 1);
          const a = acc.get(item);
          if (a) for (let t = 0; t < c.length; t++) a[t] = (a[t] ?? 0) + (c[t] ?? 0);
          else acc.set(item, [...c]);
        }
      }
      return acc;
    };

    const spanOf = (kind: TrendingKind) => (kind === "1h" ? HOUR : DAY);
    const scoreOf = (c: readonly number[]) => {
      let score = 0;
      for (let t = 0; t < c.length; t++) score += (c[t] ?? 0) * (weightOf[t] ?? 0);
      return score;
    };
    /**
     * The top list of items with these summed counts: score descending, ties by item id. The
     * best `topK` are picked with a heap of that size, not by sorting every item of a day.
     */
    const topOf = (entries: Iterable<[string, number[]]>): TrendingPartItem[] =>
      topByScore(entries, scoreOf, opts.topK).map(([i, score, c]): TrendingPartItem => [
        i,
        score,
        c[0] ?? 0,
        c[1] ?? 0,
        c[2] ?? 0,
        c[3] ?? 0,
      ]);

    const part = (kind: TrendingKind, start: number, final = false): TrendingPart => {
      const end = start + spanOf(kind);
      const items = topOf(sumHours(kind, start, end));
      return { kind, start, end, items, final, wm: progress };
    };

    /**
     * The 24 h window that the finals reach, kept as they move on an hour at a time: the hour a
     * window gains is added, the hour it loses taken away, instead of every cell of the day
     * summed again (decoded again, once a snapshot had let them go cold) for each final: ~0.2 s
     * per partition and hour of event time at 250k cells, so a catch-up over a month held each
     * partition's loop for minutes. Exact while every count is a multiple of a half (views,
     * clicks, half-star ratings): such sums are exact in a double, so adding and taking away
     * give the bits a sum over the cells gives. A count that is not (a rating of 3.7) makes the
     * next final a sum over the cells again. In memory only: rebuilt from the cells after a
     * restart.
     */
    const closingDay = () => {
      let end = NaN;
      let acc = new Map<string, number[]>();
      let exact = false;
      const fold = (h: number, sign: 1 | -1) => {
        const keys = byHour.get(`24h|${h}`);
        if (!keys) return;
        for (const k of keys) {
          const c = cells.get(k);
          if (!c) continue;
          const item = k.slice(k.indexOf("|", k.indexOf("|") + 1) + 1);
          if (!halfUnits(c)) exact = false;
          let a = acc.get(item);
          if (!a) acc.set(item, (a = []));
          while (a.length < c.length) a.push(0);
          let left = 0;
          for (let t = 0; t < a.length; t++) {
            a[t] = a[t]! + sign * (c[t] ?? 0);
            if (a[t] !== 0) left++;
          }
          if (left === 0) acc.delete(item);
        }
      };
      return {
        /** Summed counts of the window ending at `e` (not to be changed). */
        at(e: number): Map<string, number[]> {
          if (exact && e >= end && e - end < DAY) {
            for (let h = end; h < e; h += HOUR) {
              fold(h, 1);
              fold(h - DAY, -1);
            }
          } else {
            exact = true;
            acc = new Map();
            for (let h = e - DAY; h < e; h += HOUR) fold(h, 1);
          }
          end = e;
          return acc;
        },
        /**
         * A record of `n` for `item` counted into hour `h`: added here if the window holds that
         * hour (a window the finals reached takes no records, since later ones are late for it;
         * this keeps the sum right if one ever did).
         */
        add(h: number, item: string, type: number, n: number) {
          if (!(h >= end - DAY && h < end)) return;
          let c = acc.get(item);
          if (!c) acc.set(item, (c = []));
          while (c.length <= type) c.push(0);
          c[type]! += n;
          if (!halfUnit(n)) exact = false;
        },
        /** Moves on to `e` before the hours it no longer holds are dropped, if it is close. */
        keepUp(e: number) {
          if (exact && e > end && e - end < DAY) this.at(e);
          else if (e > end) {
            exact = false;
            acc = new Map();
          }
        },
      };
    };
    const closing24h = closingDay();

    /**
     * The newest window of a kind, kept as records come: its items' summed counts, the items
     * counted since its last list and that list. Its list at a trigger is then the top of the
     * last list and the items changed since, not a sum over every cell of the window (for the
     * 24 h window, every item of a day, decoded again after each snapshot had let the cells go
     * cold: ~0.2 s per partition at 250k cells, every TRENDING_TRIGGER). Exact: counts only grow
     * while the window stays, so an item neither in the last list nor changed since still ranks
     * below all of that list. Sums of whole or half units do not depend on their order; after a
     * count that is not one (a rating of 3.7) the list is summed over the cells again, whose
     * order of addition a restart keeps. In memory only: rebuilt from the cells when the newest
     * window moves, and after a restart.
     */
    const newestWindow = (kind: TrendingKind) => {
      const span = spanOf(kind);
      let start = NaN;
      let acc = new Map<string, number[]>();
      let top: readonly string[] | undefined;
      const changed = new Set<string>();
      // Whether the counts added since the last sum were multiples of a half (see below).
      let exact = true;
      return {
        /** A cell of this kind gained `n` of type index `type` for `item` at hour `h`. */
        add(h: number, item: string, type: number, n: number) {
          if (!(h >= start && h < start + span)) return;
          let c = acc.get(item);
          if (!c) acc.set(item, (c = []));
          while (c.length <= type) c.push(0);
          c[type]! += n;
          changed.add(item);
          if (!halfUnit(n)) exact = false;
        },
        /** The window starting at `at`, its list now. */
        part(at: number): TrendingPart {
          if (at !== start || !exact) {
            start = at;
            acc = sumHours(kind, at, at + span);
            top = undefined;
            exact = summedHalves;
          }
          let items: TrendingPartItem[];
          if (top === undefined) items = topOf(acc);
          else {
            const candidates = new Map<string, number[]>();
            for (const i of top) candidates.set(i, acc.get(i)!);
            for (const i of changed) candidates.set(i, acc.get(i)!);
            items = topOf(candidates);
          }
          changed.clear();
          top = items.map((x) => x[0]);
          return { kind, start: at, end: at + span, items, final: false, wm: progress };
        },
      };
    };
    const newest1h = newestWindow("1h");
    const newest24h = newestWindow("24h");

    const kinds = [
      ["1h", opts.oneHourOutOfOrdernessMs],
      ["24h", opts.oneDayOutOfOrdernessMs],
    ] as const;

    /** Counts the batch's new records into their hours; what is late for a kind goes to late. */
    const count = ({ records, position }: InputBatch<ParsedRecord>): LateRecord[] => {
      const late: LateRecord[] = [];
      // The last hour marked dirty in this batch: records of a batch mostly share their hour.
      let dirtyHour = NaN;
      let hour1h = NaN;
      let hour24h = NaN;
      let keys1h: Set<string> | undefined;
      let keys24h: Set<string> | undefined;
      for (const r of records) {
        // A rating stays a rating here whatever the preset made of it (movies: 4 or more is a
        // purchase for the ranking), so trending counts every rating by its value.
        const t = r.r > 0 ? "rating" : r.t;
        if (r.s <= position.from || !counted.has(t)) continue;
        const type = EVENT_TYPES.indexOf(t as EventType);
        const h = r.ts - (r.ts % HOUR);
        const wb = r.wb;
        for (const [kind, ooo] of kinds) {
          if (wb >= 0 && r.ts < wb - ooo) {
            const watermark = wb - ooo;
            late.push({
              stage: "trending",
              reason: `behind_watermark:${kind}`,
              watermark,
              event: r,
            });
            continue;
          }
          const key = cellKey(kind, h, r.i);
          const c = cells.get(key);
          const next = c ? [...c] : [];
          while (next.length <= type) next.push(0);
          // A rating counts by its value (0.5-5), every other event once.
          const n = t === "rating" ? r.r : 1;
          next[type]! += n;
          if (!c) {
            // Records of a batch mostly share their hour: its key set is looked up once (close,
            // which drops hours, runs after the whole batch is counted).
            if (kind === "1h") {
              if (h !== hour1h || keys1h === undefined) keys1h = hourKeys("1h", (hour1h = h));
              keys1h.add(key);
            } else {
              if (h !== hour24h || keys24h === undefined) keys24h = hourKeys("24h", (hour24h = h));
              keys24h.add(key);
            }
          }
          cells.set(key, next);
          if (kind === "1h") newest1h.add(h, r.i, type, n);
          else {
            newest24h.add(h, r.i, type, n);
            closing24h.add(h, r.i, type, n);
          }
          if (kind === "24h") dirty.add("24h|newest");
          else if (h !== dirtyHour) {
            dirty.add(`1h|${h}`);
            dirtyHour = h;
          }
        }
      }
      return late;
    };

    /** The final lists of the windows progress closed with this batch; their state dropped. */
    const close = (): TrendingPart[] => {
      const finals: TrendingPart[] = [];
      // 1 h tumbling windows: final once progress − 2 h passes the end.
      const wm1 = progress - opts.oneHourOutOfOrdernessMs;
      for (const [hk, keys] of [...byHour].filter(([k]) => k.startsWith("1h|")).sort(byHourKey)) {
        const h = Number(hk.slice(3));
        if (h + HOUR > wm1) break;
        finals.push(part("1h", h, true));
        for (const k of keys) cells.delete(k);
        byHour.delete(hk);
        dirty.delete(`1h|${h}`);
        final1h = Math.max(final1h, h + HOUR);
      }
      // 24 h windows sliding by 1 h: each window end E on an hour boundary is final once
      // progress − 26 h passes E. A window's final is published when it differs from the window
      // an hour before: the hour it gains (E − 1 h) or the hour it loses (E − 25 h) holds data;
      // one that has lost its last data is published empty. A window not published holds what
      // the partition's newest final before it holds (nothing, if that is empty or absent):
      // on a sparse log (MovieLens: an hour of ratings, then nothing for days) each data hour
      // made 24 finals per partition, 4 KV puts per rating of a replay.
      const wm24 = progress - opts.oneDayOutOfOrdernessMs;
      const closedEnd = Math.floor(wm24 / HOUR) * HOUR;
      if (closedEnd > final24h) {
        const hours = [...byHour.keys()]
          .filter((k) => k.startsWith("24h|"))
          .map((k) => Number(k.slice(4)));
        // A window ending at e holds hours e − 24 h .. e − 1 h. The walk goes from data to data,
        // however far progress jumped (an hour of ratings, then nothing for days or years).
        const data = hours.sort((a, b) => a - b);
        const to = data.length > 0 ? Math.min(closedEnd, data[data.length - 1]! + DAY) : -Infinity;
        // The window that has lost the last data hour before a gap: published empty.
        const emptied = (e: number) =>
          e > final24h &&
          e <= closedEnd &&
          byHour.has(`24h|${e - DAY - HOUR}`) &&
          finals.push({
            kind: "24h",
            start: e - DAY,
            end: e,
            items: [],
            final: true,
            wm: progress,
          });
        let x = 0;
        for (let e = final24h + HOUR; e <= to;) {
          while (x < data.length && data[x]! < e - DAY) x++;
          if (x === data.length) break;
          if (data[x]! >= e) {
            // No data in [e − 24 h, e): on to the first window that holds the next data hour.
            emptied(e);
            e = data[x]! + HOUR;
            continue;
          }
          if (byHour.has(`24h|${e - HOUR}`) || byHour.has(`24h|${e - DAY - HOUR}`))
            finals.push({
              kind: "24h",
              start: e - DAY,
              end: e,
              items: topOf(closing24h.at(e)),
              final: true,
              wm: progress,
            });
          e += HOUR;
        }
        // After the newest data: the window that loses it, if progress has closed it.
        if (data.length > 0) emptied(data[data.length - 1]! + DAY + HOUR);
        final24h = closedEnd;
        closing24h.keepUp(closedEnd);
        // Hours before the hour the oldest open 24 h window loses can go: that one tells the
        // next close whether the window changed.
        for (const h of hours) {
          if (h >= closedEnd - DAY) continue;
          for (const k of byHour.get(`24h|${h}`) ?? []) cells.delete(k);
          byHour.delete(`24h|${h}`);
        }
      }
      final1hValue.set(final1h);
      final24hValue.set(final24h);
      return finals;
    };

    /** On the trigger: the newest windows' lists if they changed, and the heartbeat if it moved. */
    const newest = (): TrendingOutputs => {
      if (progress < 0) return {};
      const h = progress - (progress % HOUR);
      const parts: TrendingPart[] = [];
      if (dirty.has(`1h|${h}`)) parts.push(newest1h.part(h));
      if (dirty.has("24h|newest")) parts.push(newest24h.part(h + HOUR - DAY));
      dirty.clear();
      // The bucket keeps the last heartbeat: a quiet partition need not repeat it.
      if (progress === beat) return { parts };
      beat = progress;
      return { parts, heartbeat: [{ q: opts.partition, wm: progress }] };
    };

    const onInput = (b$: Observable<InputBatch<ParsedRecord>>) =>
      b$.pipe(
        filter((b) => b.trigger === undefined),
        map((b): TrendingOutputs => {
          const late = count(b);
          return b.progress.to > b.progress.from ? { late, parts: close() } : { late };
        }),
      );
    const onTrigger = (b$: Observable<InputBatch<ParsedRecord>>) =>
      b$.pipe(
        filter((b) => b.trigger === "time"),
        map(newest),
      );
    return {
      view: { part: (kind, start) => part(kind, start) } satisfies TrendingView,
      operator: (batches$) =>
        batches$.pipe(
          tap((b) => (progress = b.progress.to)),
          connect((b$) => merge(onInput(b$), onTrigger(b$))),
        ),
    };
  },
});

/**
 * A cell's key: "h" (1 h windows) or "d" (24 h windows), the hour's number since the epoch, the
 * item: "h|436080|44600062". Every event changes a cell of each kind, and the key was most of a
 * cell's JSON at each snapshot: the layout before, "1h|1569888000000|44600062", wrote ~9 bytes
 * more of it.
 */
export const cellKey = (kind: TrendingKind, hourStart: number, item: string) =>
  `${kind === "1h" ? "h" : "d"}|${hourStart / HOUR}|${item}`;

function byHourKey(a: [string, unknown], b: [string, unknown]) {
  const x = Number(a[0].slice(a[0].indexOf("|") + 1));
  const y = Number(b[0].slice(b[0].indexOf("|") + 1));
  return x - y;
}

/** Whether `n` is a multiple of a half, so that sums of such numbers are exact in a double. */
const halfUnit = (n: number) => Number.isInteger(n * 2) && Math.abs(n) < 2 ** 50;
const halfUnits = (c: readonly number[]) => c.every(halfUnit);

/**
 * The `k` best of `entries` by score (descending, ties by key ascending), best first, as
 * [key, score, value]: a heap of the `k` best so far, whose root is the worst of them.
 */
export function topByScore<V>(
  entries: Iterable<[string, V]>,
  score: (v: V) => number,
  k: number,
): [string, number, V][] {
  const heap: [string, number, V][] = [];
  // a is worse than b: lower score, or the same score and a later key.
  const worse = (a: [string, number, V], b: [string, number, V]) =>
    a[1] < b[1] || (a[1] === b[1] && a[0] > b[0]);
  const down = (at: number) => {
    for (;;) {
      const l = 2 * at + 1;
      const r = l + 1;
      let w = at;
      if (l < heap.length && worse(heap[l]!, heap[w]!)) w = l;
      if (r < heap.length && worse(heap[r]!, heap[w]!)) w = r;
      if (w === at) return;
      [heap[at], heap[w]] = [heap[w]!, heap[at]!];
      at = w;
    }
  };
  if (k <= 0) return [];
  for (const [key, v] of entries) {
    const s = score(v);
    if (heap.length < k) {
      heap.push([key, s, v]);
      for (let at = heap.length - 1; at > 0;) {
        const up = (at - 1) >> 1;
        if (!worse(heap[at]!, heap[up]!)) break;
        [heap[at], heap[up]] = [heap[up]!, heap[at]!];
        at = up;
      }
    } else if (worse(heap[0]!, [key, s, v])) {
      heap[0] = [key, s, v];
      down(0);
    }
  }
  return heap.sort((a, b) => b[1] - a[1] || (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0));
}
