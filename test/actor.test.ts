import { describe, it, expect } from "vitest";
import { toArray } from "rxjs";
import {
  ActorFailedError,
  ActorStoppedError,
  createActor,
  type ActorContext,
  type ActorEvent,
  type Behavior,
} from "../runtime/index.js";

/** A promise with its resolver outside, to hold a receive or start open. */
function deferred<T = void>(): { promise: Promise<T>; resolve: (value: T) => void } {
  let resolve!: (value: T) => void;
  const promise = new Promise<T>((r) => {
    resolve = r;
  });
  return { promise, resolve };
}

/** Lets every pending microtask run (no timers involved). */
const flush = (): Promise<void> => new Promise((resolve) => setImmediate(resolve));

function recorder<M>(extra: Partial<Behavior<M>> = {}): Behavior<M> & { seen: M[]; stops: number } {
  const b = {
    seen: [] as M[],
    stops: 0,
    receive(msg: M) {
      b.seen.push(msg);
    },
    stop() {
      b.stops++;
    },
    ...extra,
  };
  return b;
}

const noReports = (error: unknown): void => {
  throw new Error(`unexpected report: ${String(error)}`);
};

describe("createActor", () => {
  it("starts once even when start() is called twice", async () => {
    let starts = 0;
    const actor = createActor<string>({
      id: "a",
      behavior: recorder({ start: () => void starts++ }),
      reporter: noReports,
    });
    expect(actor.getStatus()).toBe("starting");
    const first = actor.start();
    const second = actor.start();
    expect(second).toBe(first);
    await first;
    expect(starts).toBe(1);
    expect(actor.getStatus()).toBe("running");
    await actor.stop();
  });

  it("processes messages one at a time in mailbox order even when receive is async", async () => {
    const log: string[] = [];
    let active = 0;
    const actor = createActor<number>({
      id: "seq",
      behavior: {
        async receive(n) {
          active++;
          expect(active).toBe(1);
          log.push(`begin ${n}`);
          // Later messages wait less: any overlap would reorder the log.
          await new Promise((resolve) => setImmediate(resolve));
          if (n % 2 === 0) await Promise.resolve();
          log.push(`end ${n}`);
          active--;
        },
      },
      reporter: noReports,
    });
    await actor.start();
    for (let n = 0; n < 5; n++) actor.send(n);
    await actor.idle();
    expect(log).toEqual([0, 1, 2, 3, 4].flatMap((n) => [`begin ${n}`, `end ${n}`]));
    await actor.stop();
  });

  it("keeps messages sent before start and processes them once running", async () => {
    const gate = deferred();
    const behavior = recorder<string>({ start: () => gate.promise });
    const actor = createActor({ id: "early", behavior, reporter: noReports });
    actor.send("a");
    actor.send("b");
    expect(actor.mailboxDepth()).toBe(2);
    const started = actor.start();
    actor.send("c");
    await flush();
    expect(behavior.seen).toEqual([]);
    gate.resolve();
    await started;
    await actor.idle();
    expect(behavior.seen).toEqual(["a", "b", "c"]);
    expect(actor.mailboxDepth()).toBe(0);
    await actor.stop();
  });

  it("drains the backlog, drops later sends, then stops", async () => {
    const gate = deferred();
    const seen: number[] = [];
    let stops = 0;
    const actor = createActor<number>({
      id: "drain",
      behavior: {
        async receive(n) {
          if (n === 0) await gate.promise;
          seen.push(n);
        },
        stop: () => void stops++,
      },
      reporter: noReports,
    });
    const statuses: string[] = [];
    actor.events$.subscribe((e) => e.type === "status" && statuses.push(e.status));
    await actor.start();
    for (let n = 0; n < 4; n++) actor.send(n);
    await flush();
    const drained = actor.drain();
    expect(actor.getStatus()).toBe("draining");
    actor.send(99);
    expect(actor.droppedCount()).toBe(1);
    gate.resolve();
    await drained;
    expect(seen).toEqual([0, 1, 2, 3]);
    expect(actor.getStatus()).toBe("stopped");
    expect(stops).toBe(1);
    expect(statuses).toEqual(["starting", "running", "draining", "stopped"]);
    expect(await actor.closed()).toBeUndefined();
  });

  it("lets a draining actor finish the work it sends itself", async () => {
    const seen: string[] = [];
    const actor = createActor<string>({
      id: "self",
      behavior: {
        receive(msg, ctx) {
          seen.push(msg);
          if (msg === "step 1") ctx.send("step 2");
        },
      },
      reporter: noReports,
    });
    await actor.start();
    actor.send("step 1");
    await actor.drain();
    expect(seen).toEqual(["step 1", "step 2"]);
  });

  it("drops and counts pending messages on stop, and rejects their waiters", async () => {
    const gate = deferred();
    const behavior = recorder<number>({
      receive: async (n: number) => {
        behavior.seen.push(n);
        await gate.promise;
      },
    });
    const actor = createActor({ id: "stop", behavior, reporter: noReports });
    await actor.start();
    actor.send(1);
    actor.send(2);
    const waited = actor.sendAndWait(3);
    await flush();
    expect(actor.mailboxDepth()).toBe(2);
    const stopped = actor.stop();
    await expect(waited).rejects.toBeInstanceOf(ActorStoppedError);
    expect(actor.droppedCount()).toBe(2);
    actor.send(4);
    expect(actor.droppedCount()).toBe(3);
    await expect(actor.sendAndWait(5)).rejects.toBeInstanceOf(ActorStoppedError);
    gate.resolve();
    await stopped;
    expect(behavior.seen).toEqual([1]);
    expect(actor.getStatus()).toBe("stopped");
    expect(behavior.stops).toBe(1);
  });

  it("fails when receive throws: error event, then status failed, and closed() resolves with the Error", async () => {
    const boom = new Error("boom");
    const behavior = recorder<string>({
      receive: (msg: string) => {
        if (msg === "bad") throw boom;
      },
    });
    const actor = createActor({ id: "fail", behavior, reporter: noReports });
    const events = new Promise<ActorEvent[]>((resolve) =>
      actor.events$.pipe(toArray()).subscribe(resolve),
    );
    await actor.start();
    actor.send("ok");
    const bad = actor.sendAndWait("bad");
    const after = actor.sendAndWait("after");
    await expect(bad).rejects.toBe(boom);
    await expect(after).rejects.toBeInstanceOf(ActorFailedError);
    expect(await actor.closed()).toBe(boom);
    expect(actor.getStatus()).toBe("failed");
    expect(behavior.stops).toBe(1);
    expect((await events).slice(-3)).toEqual([
      { type: "status", actorId: "fail", status: "running" },
      { type: "error", actorId: "fail", error: boom },
      { type: "status", actorId: "fail", status: "failed" },
    ]);
    // "after" was dropped by the failure, "late" by the ended actor.
    actor.send("late");
    expect(actor.droppedCount()).toBe(2);
  });

  it("fails when an async receive rejects, with a non-Error wrapped for closed()", async () => {
    const actor = createActor<string>({
      id: "reject",
      behavior: { receive: () => Promise.reject("plain string") },
      reporter: noReports,
    });
    await actor.start();
    actor.send("x");
    const result = await actor.closed();
    expect(result).toBeInstanceOf(ActorFailedError);
    expect((result as Error).cause).toBe("plain string");
  });

  it("fails from a background loop through ctx.fail and aborts its signal", async () => {
    let ctx!: ActorContext<string>;
    const behavior = recorder<string>({ start: (c: ActorContext<string>) => void (ctx = c) });
    const actor = createActor({ id: "bg", behavior, reporter: noReports });
    await actor.start();
    const lost = new Error("consumer lost");
    ctx.fail(lost);
    expect(ctx.signal.aborted).toBe(true);
    expect(await actor.closed()).toBe(lost);
    expect(actor.getStatus()).toBe("failed");
    expect(behavior.stops).toBe(1);
  });

  it("rejects start() and fails when behavior.start throws", async () => {
    const broken = new Error("no snapshot");
    const behavior = recorder<string>({
      start: async () => {
        throw broken;
      },
    });
    const actor = createActor({ id: "start-fail", behavior, reporter: noReports });
    await expect(actor.start()).rejects.toBe(broken);
    expect(actor.getStatus()).toBe("failed");
    expect(await actor.closed()).toBe(broken);
    expect(behavior.stops).toBe(1);
  });

  it("aborts the signal on stop so background loops end", async () => {
    let loopEnded = false;
    const actor = createActor<string>({
      id: "signal",
      behavior: {
        start(ctx) {
          ctx.signal.addEventListener("abort", () => {
            loopEnded = true;
          });
        },
        receive() {},
      },
      reporter: noReports,
    });
    await actor.start();
    expect(loopEnded).toBe(false);
    await actor.stop();
    expect(loopEnded).toBe(true);
  });

  it("calls behavior.stop exactly once however often it is stopped or failed", async () => {
    let ctx!: ActorContext<string>;
    const behavior = recorder<string>({ start: (c: ActorContext<string>) => void (ctx = c) });
    const reports: unknown[] = [];
    const actor = createActor({
      id: "once",
      behavior,
      reporter: (error) => reports.push(error),
    });
    await actor.start();
    await Promise.all([actor.stop(), actor.stop(), actor.drain()]);
    ctx.fail(new Error("too late"));
    await actor.stop();
    expect(behavior.stops).toBe(1);
    expect(await actor.closed()).toBeUndefined();
    // A failure after the end is not swallowed: it goes to the reporter.
    expect(reports).toEqual([new Error("too late")]);
  });

  it("reports a throwing behavior.stop instead of rejecting", async () => {
    const reports: unknown[] = [];
    const actor = createActor<string>({
      id: "bad-stop",
      behavior: {
        receive() {},
        stop() {
          throw new Error("close failed");
        },
      },
      reporter: (error, actorId) => reports.push([actorId, error]),
    });
    await actor.start();
    await actor.stop();
    expect(reports).toEqual([["bad-stop", new Error("close failed")]]);
    expect(actor.getStatus()).toBe("stopped");
  });

  it("waits for an in-flight receive before calling behavior.stop", async () => {
    const order: string[] = [];
    const actor = createActor<string>({
      id: "inflight",
      behavior: {
        async receive(_msg, ctx) {
          await new Promise<void>((resolve) =>
            ctx.signal.addEventListener("abort", () => resolve()),
          );
          order.push("receive done");
        },
        stop: () => void order.push("stop"),
      },
      reporter: noReports,
    });
    await actor.start();
    const done = actor.sendAndWait("work");
    await flush();
    await actor.stop();
    await done;
    expect(order).toEqual(["receive done", "stop"]);
  });

  it("resolves sendAndWait once the behavior has handled the message (request/reply)", async () => {
    type Msg = { n: number; reply: (value: number) => void };
    const actor = createActor<Msg>({
      id: "rpc",
      behavior: { receive: (msg) => msg.reply(msg.n * 2) },
      reporter: noReports,
    });
    await actor.start();
    let answer = 0;
    await actor.sendAndWait({ n: 21, reply: (v) => (answer = v) });
    expect(answer).toBe(42);
    await actor.stop();
  });

  it("stops an actor that was never started, and then refuses to start", async () => {
    const behavior = recorder<string>();
    const actor = createActor({ id: "never", behavior, reporter: noReports });
    actor.send("a");
    await actor.stop();
    expect(actor.getStatus()).toBe("stopped");
    expect(actor.droppedCount()).toBe(1);
    expect(behavior.stops).toBe(1);
    await expect(actor.start()).rejects.toBeInstanceOf(ActorStoppedError);
    await expect(actor.idle()).resolves.toBeUndefined();
  });

  it("processes 100k synchronous messages in order", async () => {
    let sum = 0;
    let last = -1;
    let ordered = true;
    const actor = createActor<number>({
      id: "hot",
      behavior: {
        receive(n) {
          if (n !== last + 1) ordered = false;
          last = n;
          sum += n;
        },
      },
      reporter: noReports,
    });
    await actor.start();
    for (let n = 0; n < 100_000; n++) actor.send(n);
    await actor.idle();
    expect(ordered).toBe(true);
    expect(sum).toBe((100_000 * 99_999) / 2);
    expect(actor.mailboxDepth()).toBe(0);
    await actor.stop();
  });
});
