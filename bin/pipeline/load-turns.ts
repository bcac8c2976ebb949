import { loadRunning } from "../../state/cold-index.js";

/**
 * Snapshot loads one at a time, in the order they are asked for (pipeline.ts: the loads are CPU
 * work on the event loop that serves gRPC, and forty side by side held it for seconds at a time),
 * with the next one's LevelDB read started while the one before it runs: the read is the thread
 * pool's work, the load the event loop's, so the two overlap instead of the loop waiting for each
 * instance's bytes in turn (collaborative's 123 MB and covisit's 76 MB at 1M users, bench step 6).
 * The next READ_AHEAD loads read ahead: LevelDB reads one instance on one thread of the pool, so
 * two side by side use both cores while the loop does little (1M users: the eight history
 * instances, covisit and collaborative read in 0.85 s one by one, 0.44 s all at once). Their bytes
 * are held until their load, so the bound is two instances' bytes at a time.
 */
export const READ_AHEAD = 2;

export interface LoadTurns {
  /** Runs `load` after every load asked for before it; `readAhead` starts its read early. */
  run<T>(load: () => Promise<T>, readAhead?: () => void): Promise<T>;
}

export function createLoadTurns(): LoadTurns {
  const waiting: { readAhead: (() => void) | undefined; ahead: boolean }[] = [];
  let running = false;
  let tail: Promise<unknown> = Promise.resolve();
  /** The first READ_AHEAD loads waiting start their reads, once each, while another one runs. */
  const readNext = () => {
    if (!running) return;
    for (const next of waiting.slice(0, READ_AHEAD)) {
      if (next.ahead) continue;
      next.ahead = true;
      next.readAhead?.();
    }
  };
  return {
    run(load, readAhead) {
      waiting.push({ readAhead, ahead: false });
      readNext();
      const go = async () => {
        waiting.shift();
        running = true;
        // Records lazy loads left pending are placed while no load is busy (cold-settle.ts).
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
