import type { ParsedRecord } from "../parse.js";
import type { SourceEvent } from "./types.js";

/** What the candidate sources read of a user-path record. */
export const sourceEventOf = (r: ParsedRecord): SourceEvent => ({
  u: r.u,
  i: r.i,
  t: r.t,
  ts: r.ts,
  c: r.c,
  r: r.r,
});
