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

  it("shares one slice per turn among the actors that yielded, none starving", async () => {
    const seen: string[] = [];
    const actors = Array.from({ length: 20 }, (_, a) =>
      createActor<number>({
        id: `many-${a}`,
        behavior: {
          receive: (n) => {
            spin(2);
            seen.push(`${a}:${n}`);
          },
        },
      }),
    );
    for (const actor of actors) await actor.start();
    for (let n = 0; n < 10; n++) for (const actor of actors) actor.send(n);
    // Messages processed between one timer and the next: a turn of the loop's actor work.
    const perTurn: number[] = [];
    await new Promise<void>((done) => {
      let last = seen.length;
      const tick = () => {
        perTurn.push(seen.length - last);
        last = seen.length;
        if (seen.length < 200) setTimeout(tick, 0);
        else done();
      };
      setTimeout(tick, 0);
    });
    for (const actor of actors) await actor.idle();
    // Each actor's messages in order, all of them.
    for (let a = 0; a < 20; a++)
      expect(seen.filter((x) => x.startsWith(`${a}:`))).toEqual(
        Array.from({ length: 10 }, (_, n) => `${a}:${n}`),
      );
    // The first turn runs each new burst's first message; after it, a turn is about a slice
    // (2-3 messages of 2 ms), not a message of every waiting actor (20).
    expect(Math.max(...perTurn.slice(1))).toBeLessThanOrEqual(8);
    for (const actor of actors) await actor.stop();
  });
});
