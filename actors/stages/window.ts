import { map } from "rxjs";
import { defineStage, port, type InputBatch, type StageContext } from "../../runtime/index.js";
import type { ParsedRecord, EventType } from "../contract/index.js";
import type { AdaptedHandler } from "../host/index.js";

/**
 * A window result on the hop to interest-ranking: an upsert keyed by (w, u, i, t).
 * `n` is the count so far; `f` is true on the final result. A record with `close` set and no key
 * says the window `close` is final for every key of this partition.
 */
export interface WindowRecord {
  /** Window start, epoch ms. */
  w: number;
  u: string;
  i: string;
  t: EventType;
  n: number;
  /** main category, brand, last price seen (-1 none) carried along */
  c: string;
  b: string;
  pr: number;
}

export interface WindowClose {
  close: number;
}

export type WindowOutput = WindowRecord | WindowClose;

interface Cell {
  n: number;
  c: string;
  b: string;
  pr: number;
}

/**
 * A cell as the state holds it: [n, c, b, pr], written as JSON at each snapshot that changed it.
 * The window's cells were the largest JSON part of the design stages' snapshots (~100 B per event
 * on the REES46 head: a cell changes with nearly every event), and as an object each value wrote
 * its four names again. (A binary codec was measured too: with keys this long it saved ~17% of
 * the bytes, for ~4x the snapshot CPU, and its deltas of short-lived cells piled up on disk until
 * a full checkpoint where the JSON part's own checkpoint rule keeps them bounded.) Snapshots from
 * before hold objects: still read.
 */
export type StoredCell = [n: number, c: string, b: string, pr: number];
const cellOf = (v: StoredCell | Cell | undefined): Cell | undefined =>
  v === undefined || !Array.isArray(v) ? v : { n: v[0], c: v[1], b: v[2], pr: v[3] };

/**
 * A cell's key: "<w>|<t>|<length of u>|<u><i>" (u and i may contain anything, '|' too: the length
 * tells them apart). Keys of snapshots from before are "<w>|<t>|<JSON [u, i]>", whose JSON
 * quotes were escaped again in the snapshot's JSON: moved to this form on load.
 */
export const cellKey = (w: number, t: string, u: string, i: string) =>
  `${w}|${t}|${u.length}|${u}${i}`;
/** The key of the layout before, for a key of that form (its third part is a JSON array). */
function rekeyed(k: string): string | undefined {
  const at = k.indexOf("|", k.indexOf("|") + 1) + 1;
  if (k.charCodeAt(at) !== 0x5b /* [ */) return undefined;
  const [u, i] = JSON.parse(k.slice(at)) as [string, string];
  return k.slice(0, at) + `${u.length}|${u}${i}`;
}

export interface WindowSettings {
  /** Tumbling window size (DESIGN: 5 min). */
  sizeMs: number;
  /** The user path's out-of-orderness: a window is final once progress − this passes its end. */
  outOfOrdernessMs: number;
}

export interface WindowOptions extends WindowSettings {
  partition: number;
}

export interface WindowView {
  /** Open windows and their key counts (bounded by open windows, not by events). */
  openWindows(): Map<number, number>;
}

/**
 * window: tumbling windows counting interactions per (user, item, event_type), in update mode:
 * each input batch emits the new counts of the keys it changed, and a close marker once the
 * watermark passes a window's end, after which the window's state is dropped.
 */
export const windowStage = defineStage({
  name: "window",
  input: port<ParsedRecord>(),
  ports: { window: port<WindowOutput>() },
  create(ctx: StageContext<WindowSettings>) {
    const { sizeMs, outOfOrdernessMs } = ctx.settings;
    const cells = ctx.state.map<StoredCell | Cell>("cell"); // keys: cellKey
    // Cells of the layout before (keys with JSON, objects) in this layout: the next snapshot
    // writes them once.
    for (const k of [...cells.keys()]) {
      const to = rekeyed(k);
      if (to === undefined) continue;
      const { n, c, b, pr } = cellOf(cells.get(k))!;
      cells.delete(k);
      cells.set(to, [n, c, b, pr]);
    }
    // In-memory index window -> keys, rebuilt from the state.
    const byWindow = new Map<number, Set<string>>();
    const indexKey = (w: number, k: string) => {
      let s = byWindow.get(w);
      if (!s) byWindow.set(w, (s = new Set()));
      s.add(k);
    };
    for (const k of cells.keys()) indexKey(Number(k.slice(0, k.indexOf("|"))), k);

    /** Counts the batch into its windows: the new count of each key it changed, once. */
    const count = ({ records, progress }: InputBatch<ParsedRecord>): WindowOutput[] => {
      const changed = new Map<string, WindowRecord>();
      for (const r of records) {
        const w = r.ts - (r.ts % sizeMs);
        // A window the watermark already closed (before this batch) takes nothing more.
        if (progress.from >= 0 && w + sizeMs <= progress.from - outOfOrdernessMs) continue;
        const key = cellKey(w, r.t, r.u, r.i);
        const prev = cellOf(cells.get(key));
        const cell: Cell = {
          n: (prev?.n ?? 0) + 1,
          c: r.c || prev?.c || "",
          b: r.b || prev?.b || "",
          pr: r.pr >= 0 ? r.pr : (prev?.pr ?? -1),
        };
        if (!prev) indexKey(w, key);
        cells.set(key, [cell.n, cell.c, cell.b, cell.pr]);
        changed.set(key, {
          w,
          u: r.u,
          i: r.i,
          t: r.t,
          n: cell.n,
          c: cell.c,
          b: cell.b,
          pr: cell.pr,
        });
      }
      return [...changed.values()];
    };

    /** Windows the watermark passed with this batch, oldest first: state dropped, close marked. */
    const close = ({ progress }: InputBatch<ParsedRecord>): WindowClose[] => {
      if (progress.to <= progress.from) return [];
      const wm = progress.to - outOfOrdernessMs;
      const closed: WindowClose[] = [];
      for (const [w, keys] of [...byWindow].sort((a, b) => a[0] - b[0])) {
        if (w + sizeMs > wm) break;
        for (const k of keys) cells.delete(k);
        byWindow.delete(w);
        closed.push({ close: w });
      }
      return closed;
    };

    return {
      view: {
        openWindows: () => new Map([...byWindow].map(([w, s]) => [w, s.size])),
      } satisfies WindowView,
      // Counts before closes: a window closed by this batch still gets the batch's records.
      operator: (batches$) =>
        batches$.pipe(map((batch) => ({ window: [...count(batch), ...close(batch)] }))),
    };
  },
});

export type WindowHandler = AdaptedHandler<WindowView>;
