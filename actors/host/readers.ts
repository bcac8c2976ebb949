/**
 * The stage instances of this process that read each input (stream and filter subject), so that
 * a hop message read by several of them is decoded once (codec.ts `shared`). A message on
 * reco.parse.3 is read by that partition's watermark, history and drift instances and by the
 * merged stages' wildcard input (reco.parse.*: covisit, collaborative): five readers, of which
 * each merged stage decoded it once more when only readers of the very same filter shared.
 */
export interface HostReaders {
  /** An instance starts reading `subject` (a filter, wildcards allowed) of `stream`; the return undoes it. */
  add(stream: string, subject: string): () => void;
  /** Readers in this process of a message on `subject` of `stream`. */
  of(stream: string, subject: string): number;
}

/** Whether a NATS filter subject (`*` one token, `>` the rest) matches a message subject. */
export function subjectMatches(filter: string, subject: string): boolean {
  if (filter === subject) return true;
  const f = filter.split(".");
  const s = subject.split(".");
  for (let x = 0; x < f.length; x++) {
    if (f[x] === ">") return s.length > x;
    if (x >= s.length || (f[x] !== "*" && f[x] !== s[x])) return false;
  }
  return f.length === s.length;
}

export function createHostReaders(): HostReaders {
  /** Readers per stream, by filter subject. */
  const byStream = new Map<string, Map<string, number>>();
  /**
   * Counts per stream and message subject, cleared when readers come or go (by stream, then
   * subject: no key string built per message read).
   */
  const counts = new Map<string, Map<string, number>>();
  return {
    add(stream, subject) {
      let filters = byStream.get(stream);
      if (!filters) byStream.set(stream, (filters = new Map()));
      filters.set(subject, (filters.get(subject) ?? 0) + 1);
      counts.clear();
      let done = false;
      return () => {
        if (done) return;
        done = true;
        const n = (filters.get(subject) ?? 1) - 1;
        if (n > 0) filters.set(subject, n);
        else filters.delete(subject);
        counts.clear();
      };
    },
    of(stream, subject) {
      let known = counts.get(stream);
      if (known === undefined) counts.set(stream, (known = new Map()));
      let n = known.get(subject);
      if (n === undefined) {
        n = 0;
        for (const [filter, c] of byStream.get(stream) ?? [])
          if (subjectMatches(filter, subject)) n += c;
        known.set(subject, n);
      }
      return n;
    },
  };
}
