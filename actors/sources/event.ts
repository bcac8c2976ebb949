import type { ParsedRecord } from "../contract/index.js";
import type { SourcePreset } from "./preset.js";
import type { SourceEvent } from "./types.js";

/**
 * What the candidate sources read of a user-path record. With the movies preset, parse makes a
 * rating of 4 or more a purchase (the design stages' target, DESIGN §3 "movies"); the sources
 * read it as the rating it was, weighed by its value (DESIGN §3.7 "ratings by value"), as
 * `reco eval` reads the log.
 */
export const sourceEventOf = (
  r: ParsedRecord,
  preset: Pick<SourcePreset, "name">,
): SourceEvent => ({
  u: r.u,
  i: r.i,
  t: preset.name === "movies" && r.t === "purchase" && r.r >= 0 ? "rating" : r.t,
  ts: r.ts,
  c: r.c,
  r: r.r,
});
