/**
 * The event-loop budget shared by every actor of the process: how long mailboxes may run in one
 * turn, and the queue of loops that yielded and wait for the next turn.
 */

/**
 * How long, in ms, actors may run in one turn of the event loop before they yield to it.
 * Mailboxes drain in microtasks (and an async receive's continuation is one): with a backlog
 * they never gave the loop back, so a gRPC call or a timer waited behind all of it (bench step 4b:
 * the loop held 1.5 s at a time while 10k events/s were ingested). Past the budget, the actor
 * waits in `yielded` for the loop's next check phase (setImmediate), where one slice is shared
 * by the waiting actors in turn: I/O that came meanwhile runs first, and many backlogged actors
 * do not each take a message per turn (with ~30 stage actors that held the loop ~0.4 s).
 */
export const ACTOR_SLICE_MS = 4;
/**
 * The current slice: whether one is open, and the ms actors have spent in it (their receives'
 * time, not the wall time since it opened: a slice whose end is still queued, opened in a check
 * phase and so ending in the next turn's, must not make that turn's first actor wait).
 */
let open = false;
let spent = 0;
const endSlice = (): void => {
  open = false;
  spent = 0;
};
/** Loops of actors that yielded, first come first run, and whether a drain is queued. */
const yielded: (() => void)[] = [];
let draining = false;
/**
 * One slice of the yielded actors' loops per turn of the event loop: the first always runs (each
 * gets its turn, none starves), the others while the slice lasts; those left wait for the next.
 */
const drainYielded = (): void => {
  draining = false;
  open = true;
  spent = 0;
  const waiting = yielded.length;
  for (let x = 0; x < waiting; x++) {
    if (x > 0 && spent >= ACTOR_SLICE_MS) break;
    yielded.shift()!();
  }
  // This phase's slice is over (an end queued from here would come only in the next turn).
  endSlice();
  if (yielded.length > 0 && !draining) {
    draining = true;
    setImmediate(drainYielded);
  }
};
/** Queues an actor's loop to run again in a later turn of the event loop. */
export const yieldToLoop = (loop: () => void): void => {
  yielded.push(loop);
  if (!draining) {
    draining = true;
    setImmediate(drainYielded);
  }
};

/** True once the actors of this turn of the loop have run for ACTOR_SLICE_MS. */
export const sliceSpent = (): boolean => {
  if (!open) {
    open = true;
    spent = 0;
    // The slice ends with this turn of the loop: the next turn's actors get a budget of their own.
    setImmediate(endSlice);
    return false;
  }
  return spent >= ACTOR_SLICE_MS;
};

/** Counts `ms` of an actor's receive against the current slice. */
export const sliceWork = (ms: number): void => {
  spent += ms;
};
