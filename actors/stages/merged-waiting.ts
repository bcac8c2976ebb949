import { Packr } from "msgpackr";
import type { ValueCodec } from "../../runtime/index.js";
import type { StageState } from "../../state/index.js";

/**
 * The records a merged stage (merged-input.ts) holds until every partition has reported that
 * far, kept in its state as one key per hop taken: "<subject>|<first s>" → the hop's records
 * still waiting. A snapshot then writes the hops that came and went since the previous one, not
 * every subject's whole list: with one partition behind the others, the list of each subject
 * grows until it reports, and the earlier layout (one key per subject, see {@link OLD_MAP})
 * rewrote all of it at every snapshot (~59 KB per snapshot of 1,000 REES46 events with a
 * partition 60 hops behind, against the ~1,000 records' own bytes).
 *
 * A hop's key is rewritten only when a take stops inside it (the rest of it stays), and deleted
 * once it is all taken.
 */
export interface Waiting<R extends { s: number }> {
  /** Keeps a hop's records (in `s` order, after every record kept for the subject). */
  append(subject: string, recs: R[]): void;
  /** Moves the subject's records up to `complete` (in `s` order) to `out`. */
  take(subject: string, complete: number, out: R[]): void;
  /** Whether no record waits on any of these subjects. */
  empty(subjects: readonly string[]): boolean;
}

/** The map of the layout before: subject → its whole waiting list (JSON text, or bytes of it). */
export const OLD_MAP = "waiting";
export const MAP = "waiting-hops";

const keyOf = (subject: string, s: number) => `${subject}|${s}`;

/**
 * A hop's waiting records as MessagePack with msgpackr's records (each shape's keys once per
 * value, as hop-binary.ts writes hops): a value decodes alone. A list stored as JSON text before
 * still loads.
 */
const packr = new Packr({ useRecords: true });
export const waitingCodec: ValueCodec<{ s: number }[]> = {
  encode: (recs) => packr.pack(recs),
  decode(stored) {
    if (Array.isArray(stored)) return stored as { s: number }[];
    if (typeof stored === "string") return JSON.parse(stored) as { s: number }[];
    return packr.unpack(stored as Uint8Array) as { s: number }[];
  },
};

/**
 * The waiting records of a merged stage's state. Lists of the layout before are moved into hop
 * keys now (one key per subject, its first record's `s`): the next snapshot writes both.
 */
export function loadWaiting<R extends { s: number }>(state: StageState): Waiting<R> {
  const hops = state.map<R[]>(MAP, { codec: waitingCodec as unknown as ValueCodec<R[]> });
  const old = state.map<R[]>(OLD_MAP, { text: true });
  for (const subject of [...old.keys()]) {
    const list = old.get(subject);
    if (list && list.length > 0) hops.set(keyOf(subject, list[0]!.s), list);
    old.delete(subject);
  }
  /** Each subject's hop keys in `s` order (rebuilt from the keys: their `s`). */
  const bySubject = new Map<string, string[]>();
  const loaded = new Map<string, [number, string][]>();
  for (const k of hops.keys()) {
    const at = k.lastIndexOf("|");
    const subject = k.slice(0, at);
    let list = loaded.get(subject);
    if (!list) loaded.set(subject, (list = []));
    list.push([Number(k.slice(at + 1)), k]);
  }
  for (const [subject, list] of loaded)
    bySubject.set(
      subject,
      list.sort((a, b) => a[0] - b[0]).map(([, k]) => k),
    );

  return {
    append(subject, recs) {
      const key = keyOf(subject, recs[0]!.s);
      // A hop that starts where the last one ended (a record taken again at the subject's last
      // sequence, merged-input.ts `again`): one list with it, in order.
      const had = hops.get(key);
      if (had !== undefined) {
        hops.set(key, [...had, ...recs]);
        return;
      }
      hops.set(key, recs);
      const q = bySubject.get(subject);
      if (q) q.push(key);
      else bySubject.set(subject, [key]);
    },
    take(subject, complete, out) {
      const q = bySubject.get(subject);
      if (!q) return;
      let done = 0;
      for (const key of q) {
        const recs = hops.get(key)!;
        let x = 0;
        while (x < recs.length && recs[x]!.s <= complete) out.push(recs[x++]!);
        if (x === recs.length) {
          hops.delete(key);
          done++;
          continue;
        }
        if (x > 0) hops.set(key, recs.slice(x));
        break;
      }
      if (done === q.length) bySubject.delete(subject);
      else if (done > 0) q.splice(0, done);
    },
    empty(subjects) {
      for (const s of subjects) if (bySubject.has(s)) return false;
      return true;
    },
  };
}
