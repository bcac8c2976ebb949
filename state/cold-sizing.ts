/** How large a cold index's open-addressing table is made, and when it grows. */

/**
 * The table's size is any number of slots (a key's home slot is its hash scaled to the size, not
 * its low bits): it grows when a key would take it past MAX_LOAD full, to GROW_LOAD full (10 B
 * a slot: 12.5-17 B of index per key). A power-of-two table grown at 3/4 full was 3/8 to 3/4 full,
 * and a load reserved the next power of two: 125k keys (a 1M-user partition) in 262,144 slots,
 * 25 B of index per key where the records of a user's profile are ~50 (bench step 7).
 */
export const MAX_LOAD = 0.8;
const GROW_LOAD = 0.6;
/** The table's size for a new table or a growth that must hold `keys`. */
export const sizeFor = (keys: number) => Math.max(16, Math.ceil(keys / GROW_LOAD));
/**
 * The size a table grown key by key from empty has once it holds `keys` (no deletions): what a
 * load reserves and fits to, so a restarted map is no larger than one never restarted.
 */
export function grownSize(keys: number): number {
  let n = sizeFor(1);
  while (keys > n * MAX_LOAD) n = sizeFor(Math.floor(n * MAX_LOAD) + 1);
  return n;
}
