import { Subscription, type SchedulerLike } from "rxjs";

/**
 * "B records or T ms" (DESIGN §3): a subject's hop goes as soon as it holds B records (the
 * outputs see that as they buffer), else once its oldest record has waited T. While the input is
 * backlogged (a catch-up or a replay) records wait for B, or 10 T: fewer, fuller hop messages
 * (a 200k-event catch-up sent ~2.7 times fewer to each next stage), and nothing is fresher for
 * sending them early while the input is that far behind anyway. A batch that only carries
 * progress goes at the next check (T/2).
 *
 * The timer is armed for the moment the oldest record reaches T (`poke`, after each message the
 * host handles), not polled: a check every T/2 sent a record after T to 1.5 T (20-30 ms at the
 * default T), and a probe's records cross four hops on their way to an answer, so the phase of
 * each hop's check added up to ~10 ms per hop to the freshness tail (bench step 3). Idle
 * instances no longer wake every T/2 either.
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

export interface BatchTimer {
  /**
   * Arms the timer if something is buffered and it is not armed: call after each message the
   * host handles, with `flushed` after a flush it asked for (until then it asks for no other).
   */
  poke(flushed?: boolean): void;
  /** Stops it (an armed timer is cancelled). */
  readonly subscription: Subscription;
}

export function startBatchTimer(o: BatchTimerOptions): BatchTimer {
  const { maxDelayMs, scheduler } = o;
  const check = Math.max(5, Math.floor(maxDelayMs / 2));
  let armed: Subscription | undefined;
  let stopped = false;
  // A flush asked for and not yet handled: the mailbox may hold input before it.
  let asked = false;
  const ask = () => {
    asked = true;
    o.flush();
  };
  const arm = (delay: number) => {
    armed = scheduler.schedule(fire, Math.max(0, delay));
  };
  function fire() {
    armed = undefined;
    const b = o.buffered();
    if (b.records > 0) {
      const waited = scheduler.now() - b.since;
      if (waited >= maxDelayMs && (waited >= 10 * maxDelayMs || !o.backlogged())) ask();
      // Not yet T (records went and others came since it was armed), or backlogged: look again
      // when they reach T, or at the next check while backlogged (until 10 T).
      else
        arm(waited < maxDelayMs ? maxDelayMs - waited : Math.min(check, 10 * maxDelayMs - waited));
    } else if (b.subjects > 0) ask();
  }
  const poke = (flushed = false) => {
    if (flushed) asked = false;
    if (armed !== undefined || asked || stopped) return;
    const b = o.buffered();
    if (b.records > 0) arm(b.since + maxDelayMs - scheduler.now());
    else if (b.subjects > 0) arm(check);
  };
  const subscription = new Subscription(() => {
    stopped = true;
    armed?.unsubscribe();
    armed = undefined;
  });
  return { poke, subscription };
}

/** How many batches of B the server must hold for the input to count as backlogged. */
export const BACKLOG_BATCHES = 16;
