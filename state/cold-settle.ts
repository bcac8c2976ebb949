/**
 * Settling lazy loads in the background: the records lazy loads left pending in cold indexes are
 * placed in slices once no load is running (cold-index.ts settle).
 */

import type { ColdIndex } from "./cold-index-types.js";

/**
 * Records lazy loads left pending are placed in the background once the loads are over: while a
 * load runs in its turn (loadRunning: bin/pipeline/load-turns.ts, whose turns include each stage's
 * start after its load) or has marked itself busy within SETTLE_QUIET_MS (loadsBusy, at each slice
 * of a store's load), nothing; then slices of SETTLE_RECORDS placements (~5-10 ms each). Until
 * then each lookup places its key's bucket: a restart's first answers wait for the buckets they
 * read, not for every key's placement.
 */
const SETTLE_RECORDS = 20_000;
const SETTLE_QUIET_MS = 100;
const unsettled = new Set<ColdIndex>();
let lastBusy = 0;
let settleTimer: ReturnType<typeof setTimeout> | undefined;
let loadsRunning = 0;
/** A load is running (its slices call this): background placement waits. */
export function loadsBusy(): void {
  lastBusy = performance.now();
}
/** A load in its turn begins: background placement waits until the returned call says it ended. */
export function loadRunning(): () => void {
  loadsRunning++;
  let ended = false;
  return () => {
    if (ended) return;
    ended = true;
    loadsRunning--;
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
  if (loadsRunning > 0) return scheduleSettle(SETTLE_QUIET_MS);
  if (quiet < SETTLE_QUIET_MS) return scheduleSettle(SETTLE_QUIET_MS - quiet);
  // One slice places about SETTLE_RECORDS, over as many indexes as that takes.
  let budget = SETTLE_RECORDS;
  for (const c of unsettled) {
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
