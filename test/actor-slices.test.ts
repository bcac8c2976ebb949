import { describe, expect, it } from "vitest";
import { createActor } from "../runtime/index.js";
import { ACTOR_SLICE_MS } from "../runtime/actor.js";

/** Busy-waits `ms` (a receive that costs CPU, as a stage's batch does). */
const spin = (ms: number) => {
  const end = performance.now() + ms;
  while (performance.now() < end);
};

/** `count` started actors whose receive spins 2 ms, then tells `seen` (actor index, message). */
const spinning = async (count: number, id: string, seen: (a: number, n: number) => void) => {
  const actors = Array.from({ length: count }, (_, a) =>
    createActor<number>({
      id: `${id}-${a}`,
      behavior: {
        receive: (n) => {
          spin(2);
          seen(a, n);
        },
      },
    }),
  );
  for (const actor of actors) await actor.start();
  return actors;
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

  it("keeps to the slice when many actors get a message in the same turn", async () => {
    // The nats client delivers the hops of one socket read to many stages at once: each such
    // burst used to run its first message whatever the turn had already spent.
    const seen: number[] = [];
    const actors = await spinning(20, "burst", (a) => seen.push(a));
    const atImmediate = new Promise<number>((r) => setImmediate(() => r(seen.length)));
    for (const actor of actors) actor.send(0);
    const before = await atImmediate;
    for (const actor of actors) await actor.idle();
    expect(seen.sort((a, b) => a - b)).toEqual(Array.from({ length: 20 }, (_, a) => a));
    // About a slice of 2 ms messages ran in the turn they were sent in, not all 20.
    expect(before).toBeGreaterThan(0);
    expect(before).toBeLessThanOrEqual(ACTOR_SLICE_MS);
    for (const actor of actors) await actor.stop();
  });

  it("counts the actors' work against a slice, not the time since it opened", async () => {
    const seen: number[] = [];
    const actor = createActor<number>({
      id: "outside-work",
      behavior: { receive: (n) => void seen.push(n) },
    });
    await actor.start();
    // A message sent in a check phase opens a slice there, which ends only in the next turn's.
    await new Promise<void>((r) =>
      setImmediate(() => {
        actor.send(0);
        r();
      }),
    );
    // Time spent outside the actors meanwhile is not theirs: a new burst still runs at once.
    spin(2 * ACTOR_SLICE_MS);
    const atImmediate = new Promise<number>((r) => setImmediate(() => r(seen.length)));
    actor.send(1);
    expect(await atImmediate).toBe(2);
    await actor.stop();
  });

  it("shares one slice per turn among the actors that yielded, none starving", async () => {
    const seen: string[] = [];
    const actors = await spinning(20, "many", (a, n) => seen.push(`${a}:${n}`));
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
    // A turn is about a slice (2-3 messages of 2 ms), not a message of every waiting actor (20).
    expect(Math.max(...perTurn)).toBeLessThanOrEqual(8);
    for (const actor of actors) await actor.stop();
  });
});
