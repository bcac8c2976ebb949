/**
 * interest-ranking's cell keys: one per (window start, event type, user, item).
 *
 * Compact form: `<window start in base 36>,<type letter>,<user>,<item>`, e.g.
 * `mifg3ls0,v,u123456,i1234` (24 characters where the JSON array form
 * `[1763881200000,"view","u123456","i1234"]` has 40). A cell's key is held twice: as the cold
 * record's key (state/cold-index.ts) and, without its window start, in the stage's index of each
 * window's keys (a JS string): ~26 B less per cell, and a user with n events has ~n cells (bench
 * step 7 at 1M users: 80 MiB of interest-ranking's cold state, most of it keys).
 *
 * The JSON form stays for any cell the compact one cannot hold unambiguously (an id with a comma
 * or a newline, a type without a letter, a window start that is not a safe integer), and for the
 * cells of snapshots written before (interest-ranking.ts moves those to the compact key when it
 * loads them). The two never meet: a JSON key starts with "[", a compact one with a base-36 digit
 * or "-"; a JSON key's tail after its first comma starts with a quote, a compact one's with a
 * type letter.
 */

/** Letters of the event types (never change one: stored keys hold them). */
const TYPE_LETTER: Readonly<Record<string, string>> = {
  view: "v",
  click: "c",
  cart: "a",
  purchase: "p",
  rating: "r",
  remove_from_cart: "x",
};
const LETTER_TYPE: Readonly<Record<string, string>> = Object.fromEntries(
  Object.entries(TYPE_LETTER).map(([t, l]) => [l, t]),
);

const plainId = (s: string) => !s.includes(",") && !s.includes("\n");

/** The key of a cell. */
export function cellKey(w: number, t: string, u: string, i: string): string {
  const letter = TYPE_LETTER[t];
  if (letter === undefined || !Number.isSafeInteger(w) || !plainId(u) || !plainId(i))
    return JSON.stringify([w, t, u, i]);
  return `${w.toString(36)},${letter},${u},${i}`;
}

export interface CellKeyParts {
  w: number;
  t: string;
  u: string;
  i: string;
}

/** A cell key's parts (either form). */
export function parseCellKey(key: string): CellKeyParts {
  if (key.charCodeAt(0) === 91 /* [ */) {
    const [w, t, u, i] = JSON.parse(key) as [number, string, string, string];
    return { w, t, u, i };
  }
  const a = key.indexOf(",");
  const b = key.indexOf(",", a + 1);
  const c = key.indexOf(",", b + 1);
  const t = LETTER_TYPE[key.slice(a + 1, b)];
  if (a < 0 || b < 0 || c < 0 || t === undefined) throw new Error(`bad cell key ${key}`);
  return { w: parseInt(key.slice(0, a), 36), t, u: key.slice(b + 1, c), i: key.slice(c + 1) };
}

/** What a window's index keeps of a key: all after its window start and the comma. */
export const keyTail = (key: string) => key.slice(key.indexOf(",") + 1);

/** The heads of window `w`'s keys: a tail starting with a quote is a JSON key's. */
export function keyOfTail(w: number): (tail: string) => string {
  const json = `[${w},`;
  const compact = `${w.toString(36)},`;
  return (tail) => (tail.charCodeAt(0) === 34 /* " */ ? json : compact) + tail;
}
