/**
 * The position set behind parse's seen ids (seen-ids.ts): log positions found by the hash each
 * holds in the log.
 */

/**
 * A set of log positions (global slot indices) found by the 64-bit hash each position holds in
 * the log: linear probing on the hash's low word, deletion by backward shift (no tombstones),
 * grown at half full and shrunk at an eighth so that memory follows what is held. A slot holds
 * the position modulo 2^31, plus 1 (0 marks an empty slot): 4 bytes, where the hash itself was 8
 * (8 MiB less at 1M ids held); a probe reads the hash from the log instead. Every position held
 * is in [base(), base() + 2^31): the log's live window (at most the ids held plus those forgotten
 * out of order at its front) never spans 2^31 slots.
 */
export function createPositionSet(
  hiAt: (g: number) => number,
  loAt: (g: number) => number,
  base: () => number,
) {
  const MIN = 1024;
  const SPAN = 2 ** 31;
  let cap = MIN; // slots, a power of two
  let slots = new Uint32Array(cap);
  let size = 0;

  const stored = (g: number) => (g % SPAN) + 1;
  /** The position a non-empty slot value stands for. */
  const positionOf = (v: number) => {
    const b = base();
    return b + ((((v - 1 - (b % SPAN)) % SPAN) + SPAN) % SPAN);
  };
  // hash64's bits are mixed already: the low word picks the slot.
  const find = (hi: number, lo: number): number => {
    const mask = cap - 1;
    for (let i = lo & mask; ; i = (i + 1) & mask) {
      const v = slots[i]!;
      if (v === 0) return -1 - i; // empty: where it would go
      const g = positionOf(v);
      if (loAt(g) === lo && hiAt(g) === hi) return i;
    }
  };
  const slotOf = (g: number): number => {
    const mask = cap - 1;
    const v = stored(g);
    for (let i = loAt(g) & mask; ; i = (i + 1) & mask) {
      const at = slots[i]!;
      if (at === 0) return -1;
      if (at === v) return i;
    }
  };
  let growths = 0;
  const resize = (to: number) => {
    if (to > cap && size > 0) growths++;
    const old = slots;
    cap = to;
    slots = new Uint32Array(cap);
    const mask = cap - 1;
    for (let i = 0; i < old.length; i++) {
      const v = old[i]!;
      if (v === 0) continue;
      let j = loAt(positionOf(v)) & mask;
      while (slots[j] !== 0) j = (j + 1) & mask;
      slots[j] = v;
    }
  };

  return {
    has: (hi: number, lo: number) => find(hi, lo) >= 0,
    /**
     * Adds position `g`, whose hash the log holds already (and no other position held has); `lo`
     * is its hash's low word, when the caller has it at hand.
     */
    add(g: number, lo: number = loAt(g)): void {
      const mask = cap - 1;
      let i = lo & mask;
      while (slots[i] !== 0) i = (i + 1) & mask;
      slots[i] = stored(g);
      if (++size * 2 > cap) resize(cap * 2);
    },
    /** Makes room for `n` positions in all, so that adding them grows the table no more. */
    reserve(n: number): void {
      let to = cap;
      while (n * 2 > to) to *= 2;
      if (to !== cap) resize(to);
    },
    /** Removes position `g` (read before its slot in the log changes). */
    remove(g: number): void {
      let i = slotOf(g);
      if (i < 0) return;
      const mask = cap - 1;
      // Backward shift: move later entries of the probe run into the hole when their home
      // slot is not between the hole and them.
      for (let j = (i + 1) & mask; ; j = (j + 1) & mask) {
        const v = slots[j]!;
        if (v === 0) break;
        const home = loAt(positionOf(v)) & mask;
        const between = i <= j ? i < home && home <= j : i < home || home <= j;
        if (between) continue;
        slots[i] = v;
        i = j;
      }
      slots[i] = 0;
      size--;
      if (cap > MIN && size * 8 < cap) resize(cap / 2);
    },
    bytes: () => slots.byteLength,
    /** Times the table grew, re-inserting every position it held. */
    growths: () => growths,
  };
}
