import { interval, type SchedulerLike, type Subscription } from "rxjs";

/**
 * "B records or T ms" (DESIGN §3): a subject's hop goes as soon as it holds B records (the
 * outputs see that as they buffer), else once its oldest record has waited T. While the input is
 * backlogged (a catch-up or a replay) records wait for B, or 10 T: fewer, fuller hop messages
 * (a 200k-event catch-up sent ~2.7 times fewer to each next stage), and nothing is fresher for
 * sending them early while the input is that far behind anyway. A batch that only carries
 * progress goes at the next check.
 *
 * The clock is the injected scheduler's, so a test drives T in virtual time.
 */
export interface BatchTimerOptions {
  maxDelayMs: number;
  scheduler: SchedulerLike;
  /** Records buffered, since when (the scheduler's clock), and subjects touched. */
  buffered(): { records: number; since: number; subjects: number };
  backlogged(): boolean;
  /** Asks for a flush (through the actor's mailbox, in order with the input). */
  flush(): void;
}

export function startBatchTimer(o: BatchTimerOptions): Subscription {
  const { maxDelayMs, scheduler } = o;
  return interval(Math.max(5, Math.floor(maxDelayMs / 2)), scheduler).subscribe(() => {
    const b = o.buffered();
    if (b.records > 0) {
      const waited = scheduler.now() - b.since;
      if (waited >= maxDelayMs && (waited >= 10 * maxDelayMs || !o.backlogged())) o.flush();
    } else if (b.subjects > 0) o.flush();
  });
}

/** How many batches of B the server must hold for the input to count as backlogged. */
export const BACKLOG_BATCHES = 16;
