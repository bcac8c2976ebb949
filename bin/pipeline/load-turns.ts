import { loadRunning } from "../../state/cold-index.js";

/**
 * Snapshot loads one at a time, in the order they are asked for (pipeline.ts: the loads are CPU
 * work on the event loop that serves gRPC, and forty side by side held it for seconds at a time),
 * with the next one's LevelDB read started while the one before it runs: the read is the thread
 * pool's work, the load the event loop's, so the two overlap instead of the loop waiting for each
 * instance's bytes in turn (collaborative's 123 MB and covisit's 76 MB at 1M users, bench step 6).
 * At most one load reads ahead, so its bytes are held for one load's time at most.
 */
export interface LoadTurns {
  /** Runs `load` after every load asked for before it; `readAhead` starts its read early. */
  run<T>(load: () => Promise<T>, readAhead?: () => void): Promise<T>;
}

export function createLoadTurns(): LoadTurns {
  const waiting: { readAhead: (() => void) | undefined; ahead: boolean }[] = [];
  let running = false;
  let tail: Promise<unknown> = Promise.resolve();
  /** The first load waiting starts its read, once, while another one runs. */
  const readNext = () => {
    const next = waiting[0];
    if (!running || !next || next.ahead) return;
    next.ahead = true;
    next.readAhead?.();
  };
  return {
    run(load, readAhead) {
      waiting.push({ readAhead, ahead: false });
      readNext();
      const go = async () => {
        waiting.shift();
        running = true;
        // Records a lazy load left pending are placed once no load runs (cold-index.ts).
        const ended = loadRunning();
        readNext();
        try {
          return await load();
        } finally {
          running = false;
          ended();
        }
      };
      const next = tail.then(go, go);
      tail = next.catch(() => undefined);
      return next;
    },
  };
}
