import { describe, expect, it } from "vitest";
import { createActor } from "../runtime/index.js";
import { ACTOR_SLICE_MS } from "../runtime/actor.js";

/** Busy-waits `ms` (a receive that costs CPU, as a stage's batch does). */
const spin = (ms: number) => {
  const end = performance.now() + ms;
  while (performance.now() < end);
};

/**
 * A mailbox with a backlog drains in microtasks: without slices nothing else (a gRPC call, a
 * timer, I/O) ran until all of it was done (bench step 4b: the loop held 1.5 s at a time).
 */
describe("actor slices", () => {
  for (const kind of ["synchronous", "async"] as const)
    it(`lets the event loop run between slices of a ${kind} backlog, in order`, async () => {
      const seen: number[] = [];
      const actor = createActor<number>({
        id: `backlog-${kind}`,
        behavior: {
          receive:
            kind === "async"
              ? async (n) => {
                  spin(1);
                  seen.push(n);
                  await Promise.resolve();
                }
              : (n) => {
                  spin(1);
                  seen.push(n);
                },
        },
      });
      await actor.start();
      const messages = 30 * ACTOR_SLICE_MS;
      for (let n = 0; n < messages; n++) actor.send(n);
      // Processed before the loop's next check phase: without slices, the whole backlog.
      const atImmediate = await new Promise<number>((r) => setImmediate(() => r(seen.length)));
      // And a timer due at once: it waits for at most a slice, not for the backlog.
      const atTimer = await new Promise<number>((r) => setTimeout(() => r(seen.length), 0));
      await actor.idle();
      expect(seen).toEqual(Array.from({ length: messages }, (_, n) => n));
      expect(atImmediate).toBeGreaterThan(0);
      expect(atImmediate).toBeLessThan(messages / 4);
      expect(atTimer).toBeLessThan(messages / 2);
      await actor.stop();
    });
});
