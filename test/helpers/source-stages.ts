import { createStageState } from "../../state/store.js";
import { persisted } from "../../state/stage-state.js";
import type { StageStateInternal } from "../../state/index.js";
import type { ParsedRecord, EventType } from "../../actors/contract/index.js";

/**
 * A state as a restarted instance loads it: every map's entries through JSON, as the snapshot
 * store writes and reads them (text maps stay text until read; a plain map's binary value as the
 * store's base64 text, persisted()).
 */
export function reloaded(state: StageStateInternal): StageStateInternal {
  const copy = createStageState();
  for (const [name, entries] of state.allMaps())
    for (const [k, v] of entries)
      copy.loadMapEntry(name, k, JSON.parse(JSON.stringify(persisted(v))) as unknown);
  copy.meta = JSON.parse(JSON.stringify(state.meta)) as Record<string, unknown>;
  return copy;
}

/** User-path records with EVENTS sequences 1, 2, ... and the progress before each. */
export function recordMaker() {
  let s = 0;
  let progress = -1;
  return (u: string, i: string, ts: number, t: EventType = "view", c = ""): ParsedRecord => {
    const r: ParsedRecord = {
      id: `e${++s}`,
      t,
      ts,
      u,
      i,
      c,
      b: "",
      pr: -1,
      r: -1,
      s,
      wb: progress,
    };
    progress = Math.max(progress, ts);
    return r;
  };
}
