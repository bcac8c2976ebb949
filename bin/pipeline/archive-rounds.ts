/**
 * A worker's copies of its snapshots to the archive (state/archive.ts), in rounds one after
 * another: each round uploads, whole, the snapshot on disk of every owned instance that wrote
 * one since its last copy (at most SNAPSHOT_INTERVAL old: the archive does not force one, which
 * waited for the instance's turn behind its queued input). A copy of a large state costs a full
 * read of it, its JSON and its gzip, so:
 *
 * - an instance whose snapshot has not moved since its last copy is not copied again (a quiet
 *   cluster uploads nothing);
 * - a round never starts while the one before is running (a round slower than the interval
 *   used to start the next beside it, each holding whole states in memory);
 * - rounds take at most ARCHIVE_MAX_SHARE of the wall time: after a round of d ms the next
 *   starts no sooner than d / ARCHIVE_MAX_SHARE after it began (as Flink's minimum pause between
 *   checkpoints), and no later than ARCHIVE_MAX_PAUSE_INTERVALS intervals after it ended. A
 *   takeover then replays more of its input from an older copy; the copy is a shortcut, the
 *   replay makes it exact.
 */

/** The largest share of the wall time archive rounds take (a round of 3 s: one per 30 s). */
export const ARCHIVE_MAX_SHARE = 0.1;
/**
 * The longest pause between rounds, in intervals: a takeover replays at most this many
 * intervals more than it would with rounds on time.
 */
export const ARCHIVE_MAX_PAUSE_INTERVALS = 10;

/** Milliseconds from the end of a round that took `tookMs` to the start of the next. */
export function archivePause(everyMs: number, tookMs: number): number {
  const spaced = Math.max(everyMs, tookMs / ARCHIVE_MAX_SHARE) - tookMs;
  return Math.max(0, Math.min(spaced, ARCHIVE_MAX_PAUSE_INTERVALS * everyMs));
}

/** What a round copied. */
export interface ArchiveRound {
  /** Instances copied, and left alone as unchanged since their last copy. */
  copied: number;
  unchanged: number;
  /** Compressed bytes uploaded. */
  bytes: number;
}

export interface ArchiveRoundsOptions {
  everyMs: number;
  /** Units owned now. */
  owned: () => Iterable<string>;
  /** The unit's stage instance ids. */
  stageIds: (unit: string) => readonly string[];
  /**
   * The input position of the running instance's snapshot on disk (undefined: not running
   * here, copied whenever asked).
   */
  snapshotPositionOf: (id: string) => number | undefined;
  /** Uploads the instance's snapshot on disk: its compressed bytes and the position it covers. */
  copy: (id: string) => Promise<{ bytes: number; seq: number }>;
  log?: (obj: object, msg: string) => void;
}

export interface ArchiveRounds {
  /** The first round in `everyMs`, then one after another. */
  start(): void;
  /** Copies the unit's instances, changed or not (a unit handed over). */
  copyUnit(unit: string): Promise<ArchiveRound>;
  /** The next round's copies of the unit start from nothing (a unit acquired). */
  forget(unit: string): void;
  /** No more rounds; waits for the one running. */
  stop(): Promise<void>;
}

export function createArchiveRounds(o: ArchiveRoundsOptions): ArchiveRounds {
  /** The input position of each instance's last copy. */
  const copiedAt = new Map<string, number>();
  let timer: NodeJS.Timeout | undefined;
  let running: Promise<void> | undefined;
  let stopped = false;

  const copyUnit = async (unit: string, onlyChanged: boolean): Promise<ArchiveRound> => {
    const r: ArchiveRound = { copied: 0, unchanged: 0, bytes: 0 };
    for (const id of o.stageIds(unit)) {
      const at = o.snapshotPositionOf(id);
      if (onlyChanged && at !== undefined && copiedAt.get(id) === at) {
        r.unchanged++;
        continue;
      }
      const { bytes, seq } = await o.copy(id);
      if (bytes > 0) {
        r.copied++;
        r.bytes += bytes;
      }
      // While its snapshot stays at `seq`, the archived copy is the instance's state.
      copiedAt.set(id, seq);
    }
    return r;
  };

  const round = async () => {
    const t0 = Date.now();
    const total: ArchiveRound = { copied: 0, unchanged: 0, bytes: 0 };
    for (const unit of [...o.owned()]) {
      if (stopped) break;
      try {
        const r = await copyUnit(unit, true);
        total.copied += r.copied;
        total.unchanged += r.unchanged;
        total.bytes += r.bytes;
      } catch (err) {
        o.log?.({ unit, err: String(err) }, "snapshot upload failed");
      }
    }
    const took = Date.now() - t0;
    const pause = archivePause(o.everyMs, took);
    if (pause + took > o.everyMs)
      o.log?.(
        { ...total, ms: took, nextInMs: Math.round(pause) },
        "snapshot archive round took long: the next one waits longer",
      );
    if (!stopped) timer = setTimeout(next, pause);
  };
  const next = () => {
    running = round().finally(() => (running = undefined));
  };

  return {
    start() {
      if (!stopped && timer === undefined) timer = setTimeout(next, o.everyMs);
    },
    copyUnit: (unit) => copyUnit(unit, false),
    forget(unit) {
      for (const id of o.stageIds(unit)) copiedAt.delete(id);
    },
    async stop() {
      stopped = true;
      clearTimeout(timer);
      await running;
    },
  };
}
