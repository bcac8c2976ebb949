/**
 * Answers kept while nothing they were computed from has changed. An answer is a pure function
 * of the state it reads (the source stages' data, the served models, the popularity rows) and
 * of the request, so an answer computed at the same state is the same answer: this memo keeps
 * them under a stamp (a list of versions and object identities of that state) and forgets all
 * of them as soon as any part of the stamp differs. Nothing is ever served that a fresh
 * computation would not give; idle, a user asked again costs a lookup instead of a blend
 * (~0.1-0.5 ms of CPU: bench/serve-micro.ts).
 */
export interface AnswerMemo<T> {
  /** The answer kept for `key` at `stamp`, if any. */
  get(key: string, stamp: readonly unknown[]): T | undefined;
  set(key: string, stamp: readonly unknown[], value: T): void;
  readonly size: number;
}

export function createAnswerMemo<T>(max: number): AnswerMemo<T> {
  const kept = new Map<string, T>();
  let at: readonly unknown[] = [];
  /** Whether `stamp` is the stamp of what is kept; if not, forgets everything. */
  const current = (stamp: readonly unknown[]) => {
    if (stamp.length === at.length && stamp.every((x, i) => Object.is(x, at[i]))) return true;
    kept.clear();
    at = [...stamp];
    return false;
  };
  return {
    get: (key, stamp) => (current(stamp) ? kept.get(key) : undefined),
    set(key, stamp, value) {
      current(stamp);
      // Bounded: the oldest entry goes first (Map keeps insertion order).
      if (kept.size >= max && !kept.has(key)) kept.delete(kept.keys().next().value!);
      kept.set(key, value);
    },
    get size() {
      return kept.size;
    },
  };
}
