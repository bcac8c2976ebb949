import { decodeEnvelope, type StageHandler, type StageOutput } from "./host.js";
import type { StageState } from "../state/index.js";
import type { ParsedRecord } from "./parse.js";
import type { EventType } from "./event.js";
import { subjects } from "./subjects.js";

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

export interface WindowOptions {
  partition: number;
  /** Tumbling window size (DESIGN: 5 min). */
  sizeMs: number;
  /** The user path's out-of-orderness: a window is final once progress − this passes its end. */
  outOfOrdernessMs: number;
}

export interface WindowHandler extends StageHandler {
  /** Open windows and their key counts (bounded by open windows, not by events). */
  openWindows(): Map<number, number>;
}

/**
 * window: tumbling windows counting interactions per (user, item, event_type), in update mode:
 * each input batch emits the new counts of the keys it changed, and a close marker once the
 * watermark passes a window's end, after which the window's state is dropped.
 */
export function createWindowHandler(
  state: StageState,
  out: StageOutput,
  opts: WindowOptions,
): WindowHandler {
  const cells = state.map<Cell>("cell"); // "<w>|<t>|<u>|<i>" (u, i may contain '|': the rest)
  // In-memory index window -> keys, rebuilt from the snapshot.
  const byWindow = new Map<number, Set<string>>();
  for (const k of cells.keys()) indexKey(Number(k.slice(0, k.indexOf("|"))), k);
  let progress = Number(state.meta.progress ?? -1);
  const target = subjects.window(opts.partition);

  function indexKey(w: number, k: string) {
    let s = byWindow.get(w);
    if (!s) byWindow.set(w, (s = new Set()));
    s.add(k);
  }

  return {
    openWindows: () => new Map([...byWindow].map(([w, s]) => [w, s.size])),
    handle(msg) {
      const env = decodeEnvelope<ParsedRecord>(msg.data);
      const changed = new Map<string, WindowRecord>();
      for (const r of env.recs) {
        const w = r.ts - (r.ts % opts.sizeMs);
        if (progress >= 0 && w + opts.sizeMs <= progress - opts.outOfOrdernessMs) continue; // closed: watermark already judged it
        const key = `${w}|${r.t}|${JSON.stringify([r.u, r.i])}`;
        const prev = cells.get(key);
        const cell: Cell = {
          n: (prev?.n ?? 0) + 1,
          c: r.c || prev?.c || "",
          b: r.b || prev?.b || "",
          pr: r.pr >= 0 ? r.pr : (prev?.pr ?? -1),
        };
        if (!prev) indexKey(w, key);
        cells.set(key, cell);
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
      for (const rec of changed.values()) out.emit(target, rec);
      if (env.wm > progress) {
        progress = env.wm;
        state.meta.progress = progress;
        const wm = progress - opts.outOfOrdernessMs;
        for (const [w, keys] of [...byWindow].sort((a, b) => a[0] - b[0])) {
          if (w + opts.sizeMs > wm) break;
          for (const k of keys) cells.delete(k);
          byWindow.delete(w);
          out.emit(target, { close: w } satisfies WindowClose);
        }
      }
      out.setProgress(progress);
      out.touch(target);
    },
  };
}
