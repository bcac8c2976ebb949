import { describe, it, expect } from "vitest";
import {
  createActor,
  createSupervisor,
  DuplicateChildError,
  EscalationError,
  SupervisorStoppedError,
  type Actor,
  type Clock,
  type SupervisorEvent,
  type SupervisorOptions,
} from "../runtime/index.js";

/** Lets every pending microtask run (no timers involved). */
const flush = (): Promise<void> => new Promise((resolve) => setImmediate(resolve));

/** Simulated time: timers fire only when the test advances the clock. */
function fakeClock(): Clock & { advance(ms: number): Promise<void>; pending(): number[] } {
  let now = 0;
  let nextHandle = 0;
  const timers = new Map<number, { at: number; fn: () => void }>();
  return {
    now: () => now,
    setTimeout(fn, ms) {
      const handle = nextHandle++;
      timers.set(handle, { at: now + ms, fn });
      return handle;
    },
    clearTimeout(handle) {
      timers.delete(handle as number);
    },
    /** Delays (from now) of the timers still pending. */
    pending: () => [...timers.values()].map((t) => t.at - now),
    async advance(ms) {
      const target = now + ms;
      for (;;) {
        await flush();
        const due = [...timers.entries()]
          .filter(([, t]) => t.at <= target)
          .sort(([, a], [, b]) => a.at - b.at)[0];
        if (due === undefined) break;
        timers.delete(due[0]);
        now = due[1].at;
        due[1].fn();
      }
      now = target;
      await flush();
    },
  };
}

/**
 * A child factory: instance number `i` (from 0) fails its start when `failStart(i)`, and any
 * instance fails when it receives "boom".
 */
function childFactory(id: string, failStart: (instance: number) => boolean = () => false) {
  const instances: Actor<string>[] = [];
  const seen: string[] = [];
  const factory = (): Actor<string> => {
    const instance = instances.length;
    const actor = createActor<string>({
      id,
      behavior: {
        start() {
          if (failStart(instance)) throw new Error(`start ${instance} failed`);
        },
        receive(msg) {
          if (msg === "boom") throw new Error(`boom in ${instance}`);
          seen.push(msg);
        },
      },
      reporter: () => undefined,
    });
    instances.push(actor);
    return actor;
  };
  return { factory, instances, seen };
}

function setup(options: Partial<SupervisorOptions> = {}) {
  const clock = fakeClock();
  const escalations: [Error, string][] = [];
  const supervisor = createSupervisor({
    id: "sup",
    clock,
    onEscalate: (error, childId) => escalations.push([error, childId]),
    reporter: (error) => {
      throw new Error(`unexpected report: ${String(error)}`);
    },
    ...options,
  });
  const events: SupervisorEvent[] = [];
  supervisor.events$.subscribe((e) => events.push(e));
  const delays = (): number[] =>
    events.flatMap((e) => (e.type === "child-restarted" ? [e.delayMs] : []));
  return { clock, supervisor, events, escalations, delays };
}

describe("createSupervisor", () => {
  it("restarts a failing child with exponential backoff: 100, 200, 400 ms", async () => {
    const { clock, supervisor, delays } = setup({ restart: { count: 10 } });
    const child = childFactory("c", (i) => i < 3);
    supervisor.supervise("c", child.factory);
    await clock.advance(0);
    expect(clock.pending()).toEqual([100]);
    await clock.advance(99);
    expect(child.instances).toHaveLength(1);
    await clock.advance(1);
    expect(child.instances).toHaveLength(2);
    expect(clock.pending()).toEqual([200]);
    await clock.advance(200);
    expect(clock.pending()).toEqual([400]);
    await clock.advance(400);
    expect(child.instances).toHaveLength(4);
    expect(supervisor.child("c")?.getStatus()).toBe("running");
    expect(delays()).toEqual([100, 200, 400]);
    await supervisor.stop();
  });

  it("caps the backoff at maxDelay", async () => {
    const { clock, supervisor, delays } = setup({
      restart: { count: 10, delay: 100, maxDelay: 300 },
    });
    const child = childFactory("c", (i) => i < 4);
    supervisor.supervise("c", child.factory);
    await clock.advance(10_000);
    expect(delays()).toEqual([100, 200, 300, 300]);
    await supervisor.stop();
  });

  it("returns the new instance from child() after a restart, and none during the backoff", async () => {
    const { clock, supervisor } = setup();
    const child = childFactory("c");
    supervisor.supervise<string>("c", child.factory);
    const first = supervisor.child<string>("c");
    expect(first).toBe(child.instances[0]);
    await supervisor.ready();
    first?.send("boom");
    await clock.advance(0);
    expect(first?.getStatus()).toBe("failed");
    expect(supervisor.child("c")).toBeUndefined();
    await clock.advance(100);
    const second = supervisor.child<string>("c");
    expect(second).toBe(child.instances[1]);
    expect(second).not.toBe(first);
    await supervisor.ready();
    await second?.sendAndWait("hello");
    expect(child.seen).toEqual(["hello"]);
    await supervisor.stop();
  });

  it("unsupervise() during the backoff cancels the restart and frees the id", async () => {
    const { clock, supervisor } = setup();
    const child = childFactory("c");
    supervisor.supervise<string>("c", child.factory);
    await supervisor.ready();
    supervisor.child<string>("c")?.send("boom");
    await clock.advance(0);
    expect(supervisor.child("c")).toBeUndefined(); // in backoff
    await supervisor.unsupervise("c");
    await clock.advance(10_000);
    // No instance came back on its own, and the id can be supervised again.
    expect(child.instances).toHaveLength(1);
    expect(supervisor.child("c")).toBeUndefined();
    supervisor.supervise<string>("c", child.factory);
    expect(child.instances).toHaveLength(2);
    await supervisor.unsupervise("c");
    expect(child.instances[1]?.getStatus()).toBe("stopped");
    await clock.advance(10_000);
    expect(child.instances).toHaveLength(2);
    await supervisor.stop();
  });

  it("escalates after count restarts within period: closed() resolves with EscalationError and onEscalate is called", async () => {
    const { clock, supervisor, events, escalations, delays } = setup({
      restart: { count: 2, period: 1_000 },
    });
    const failing = childFactory("failing", () => true);
    const sibling = childFactory("sibling");
    supervisor.supervise("sibling", sibling.factory);
    supervisor.supervise("failing", failing.factory);
    await clock.advance(1_000);
    const result = await supervisor.closed();
    expect(result).toBeInstanceOf(EscalationError);
    expect((result as EscalationError).childId).toBe("failing");
    expect((result as Error).cause).toEqual(new Error("start 2 failed"));
    expect(delays()).toEqual([100, 200]);
    expect(failing.instances).toHaveLength(3);
    expect(escalations).toEqual([[result, "failing"]]);
    expect(events.at(-1)).toEqual({ type: "escalated", childId: "failing", error: result });
    expect(sibling.instances[0]?.getStatus()).toBe("stopped");
    expect(clock.pending()).toEqual([]);
    expect(() => supervisor.supervise("late", sibling.factory)).toThrow(SupervisorStoppedError);
  });

  it("does not escalate when failures are further apart than period", async () => {
    const { clock, supervisor, escalations } = setup({ restart: { count: 1, period: 1_000 } });
    const child = childFactory("c");
    supervisor.supervise<string>("c", child.factory);
    await supervisor.ready();
    for (let round = 0; round < 3; round++) {
      supervisor.child<string>("c")?.send("boom");
      await clock.advance(100);
      await clock.advance(2_000);
    }
    expect(child.instances).toHaveLength(4);
    expect(escalations).toEqual([]);
    await supervisor.stop();
    expect(await supervisor.closed()).toBeUndefined();
  });

  it("resets the backoff after the child has run a quiet period without failing", async () => {
    const { clock, supervisor, events, delays } = setup({
      restart: { count: 10, period: 1_000 },
    });
    const child = childFactory("c");
    supervisor.supervise<string>("c", child.factory);
    const boom = async (): Promise<void> => {
      supervisor.child<string>("c")?.send("boom");
      await clock.advance(0);
      await clock.advance(clock.pending()[0] ?? 0);
    };
    await boom();
    await clock.advance(50);
    await boom();
    expect(delays()).toEqual([100, 200]);
    await clock.advance(1_000);
    await boom();
    expect(delays()).toEqual([100, 200, 100]);
    const failed = events.flatMap((e) => (e.type === "child-failed" ? [e.restarts] : []));
    expect(failed).toEqual([0, 1, 0]);
    await supervisor.stop();
  });

  it("keeps doubling after a quiet period when resetOnSuccess is false", async () => {
    const { clock, supervisor, delays } = setup({
      restart: { count: 10, period: 1_000, resetOnSuccess: false },
    });
    const child = childFactory("c");
    supervisor.supervise<string>("c", child.factory);
    for (let round = 0; round < 3; round++) {
      supervisor.child<string>("c")?.send("boom");
      await clock.advance(0);
      await clock.advance(clock.pending()[0] ?? 0);
      await clock.advance(5_000);
    }
    expect(delays()).toEqual([100, 200, 400]);
    await supervisor.stop();
  });

  it("cancels pending restarts on stop", async () => {
    const { clock, supervisor } = setup();
    const child = childFactory("c", () => true);
    supervisor.supervise("c", child.factory);
    await clock.advance(0);
    expect(clock.pending()).toEqual([100]);
    await supervisor.stop();
    expect(clock.pending()).toEqual([]);
    await clock.advance(10_000);
    expect(child.instances).toHaveLength(1);
    expect(await supervisor.closed()).toBeUndefined();
  });

  it("does not restart a child that was stopped deliberately", async () => {
    const { clock, supervisor, events } = setup();
    const child = childFactory("c");
    supervisor.supervise<string>("c", child.factory);
    await supervisor.ready();
    await supervisor.child<string>("c")?.stop();
    await clock.advance(10_000);
    expect(child.instances).toHaveLength(1);
    expect(supervisor.child("c")).toBeUndefined();
    expect(events).toEqual([]);
    // The id is free again.
    supervisor.supervise("c", child.factory);
    expect(child.instances).toHaveLength(2);
    await supervisor.stop();
  });

  it("drains every child's backlog and restarts none", async () => {
    const { clock, supervisor } = setup();
    const a = childFactory("a");
    const b = childFactory("b");
    supervisor.supervise<string>("a", a.factory);
    supervisor.supervise<string>("b", b.factory);
    supervisor.child<string>("a")?.send("a1");
    supervisor.child<string>("a")?.send("a2");
    supervisor.child<string>("b")?.send("b1");
    await supervisor.drain();
    await clock.advance(10_000);
    expect(a.seen).toEqual(["a1", "a2"]);
    expect(b.seen).toEqual(["b1"]);
    expect(a.instances.map((x) => x.getStatus())).toEqual(["stopped"]);
    expect(b.instances.map((x) => x.getStatus())).toEqual(["stopped"]);
    expect(await supervisor.closed()).toBeUndefined();
  });

  it("becomes ready once every child runs, following a restart after a failed start", async () => {
    const { clock, supervisor } = setup();
    const flaky = childFactory("flaky", (i) => i === 0);
    const steady = childFactory("steady");
    supervisor.supervise("flaky", flaky.factory);
    supervisor.supervise("steady", steady.factory);
    let ready = false;
    const readyPromise = supervisor.ready().then(() => {
      ready = true;
    });
    await clock.advance(99);
    expect(ready).toBe(false);
    await clock.advance(1);
    await readyPromise;
    expect(supervisor.child("flaky")?.getStatus()).toBe("running");
    await supervisor.stop();
  });

  it("rejects ready() with the EscalationError when the supervisor escalates", async () => {
    const { clock, supervisor } = setup({ restart: { count: 0 } });
    const child = childFactory("c", () => true);
    supervisor.supervise("c", child.factory);
    const ready = expect(supervisor.ready()).rejects.toBeInstanceOf(EscalationError);
    await clock.advance(0);
    await ready;
  });

  it("refuses a second child with the same id", async () => {
    const { supervisor } = setup();
    const child = childFactory("c");
    supervisor.supervise("c", child.factory);
    expect(() => supervisor.supervise("c", child.factory)).toThrow(DuplicateChildError);
    await supervisor.stop();
  });

  it("treats a throwing factory as a failing child", async () => {
    const { clock, supervisor, events } = setup({ restart: { count: 10 } });
    let calls = 0;
    const child = childFactory("c");
    supervisor.supervise("c", () => {
      calls++;
      if (calls === 1) throw new Error("cannot build");
      return child.factory();
    });
    expect(events[0]).toMatchObject({ type: "child-failed", childId: "c", restarts: 0 });
    await clock.advance(100);
    expect(supervisor.child("c")).toBe(child.instances[0]);
    await supervisor.stop();
  });
});
