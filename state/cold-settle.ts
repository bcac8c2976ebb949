/**
 * Settling lazy loads in the background: the records lazy loads left pending in cold indexes are
 * placed in slices while no load is busy (cold-index.ts settle).
 */

import type { ColdIndex } from "./cold-index-types.js";

/**
 * Records lazy loads left pending are placed in the background in slices of SETTLE_RECORDS
 * placements (~5-10 ms each) whenever no load has marked itself busy within SETTLE_QUIET_MS
 * (loadsBusy, at each slice of a store's load): also while later loads wait for their LevelDB
 * reads, when the loop has nothing else to do. Until a map is placed, a lookup that needs it
 * places all of it at once: waiting for every load to end first (a restart with 1M users loads for
 * ~10 s), the first answers after a restart each placed a whole map in one go (285 ms for
 * popularity-join's profiles, ~100 ms per history partition), holding the loop that serves.
 */
const SETTLE_RECORDS = 20_000;
const SETTLE_QUIET_MS = 100;
const unsettled = new Set<ColdIndex>();
let lastBusy = 0;
let settleTimer: ReturnType<typeof setTimeout> | undefined;
/** A load is running (its slices call this): background placement waits. */
export function loadsBusy(): void {
  lastBusy = performance.now();
}
/**
 * A load in its turn begins; the returned call says it ended (background placement waits
 * SETTLE_QUIET_MS from then, as after each of its slices).
 */
export function loadRunning(): () => void {
  loadsBusy();
  let ended = false;
  return () => {
    if (ended) return;
    ended = true;
    loadsBusy();
  };
}
const scheduleSettle = (ms: number) => {
  if (settleTimer !== undefined) return;
  settleTimer = setTimeout(settleSlice, ms);
  settleTimer.unref?.();
};
const settleSlice = () => {
  settleTimer = undefined;
  const quiet = performance.now() - lastBusy;
  if (quiet < SETTLE_QUIET_MS) return scheduleSettle(SETTLE_QUIET_MS - quiet);
  // One slice places about SETTLE_RECORDS, over as many indexes as that takes, the smallest
  // first: more maps are whole sooner (a partition's profiles before 1M users' last items).
  let budget = SETTLE_RECORDS;
  for (const c of [...unsettled].sort((a, b) => a.pending - b.pending)) {
    const before = c.pending;
    const left = c.settle(budget);
    if (left === 0) unsettled.delete(c);
    budget -= before - left;
    if (budget <= 0) break;
  }
  if (unsettled.size > 0) scheduleSettle(0);
};
/** Places `c`'s pending records in the background (see loadsBusy). */
export function settleInBackground(c: ColdIndex): void {
  if (c.pending === 0) return;
  unsettled.add(c);
  scheduleSettle(SETTLE_QUIET_MS);
}
