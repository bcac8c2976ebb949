import { afterEach, describe, expect, it } from "vitest";
import { spawn, type ChildProcess } from "node:child_process";
import { createChildReplies } from "../bin/child-replies.js";

/** A child that answers every question at once over IPC (the parse child's channel). */
const echoChild = (): ChildProcess =>
  spawn(
    process.execPath,
    [
      "-e",
      `process.on("message", (m) => process.send({ id: m.id, value: "answer " + m.id }));
       process.send({ ready: true });`,
    ],
    { stdio: ["ignore", "inherit", "inherit", "ipc"], serialization: "json" },
  );

const holdLoop = (ms: number) => {
  const end = Date.now() + ms;
  while (Date.now() < end);
};

describe("questions to a child process (bin/child-replies.ts)", () => {
  let child: ChildProcess | undefined;
  afterEach(() => {
    child?.kill("SIGKILL");
    child = undefined;
  });

  const connected = async (c: ChildProcess) => {
    await new Promise((resolve) => c.once("message", resolve)); // started, listening
    const replies = createChildReplies<string>("none", 200);
    c.on("message", (m: { id: number; value: string }) => replies.answer(m.id, m.value));
    expect(await replies.ask((id) => c.send({ id }))).toBe("answer 1");
    return replies;
  };

  it("takes an answer that arrived while the loop was held past the wait", async () => {
    const c = (child = echoChild());
    const replies = await connected(c);
    const asked = replies.ask((id) => c.send({ id }));
    // The child answers within milliseconds; this process reads it only after the hold, when
    // the wait's timer is due too (timers run before the I/O phase).
    holdLoop(800);
    expect(await asked).toBe("answer 2");
  });

  it("gives nothing, not an older answer, when the child is late or gone", async () => {
    const c = (child = echoChild());
    const replies = await connected(c);
    // Asked, but never sent: no answer comes. Values from the answer before are not served as
    // current (a busy child's frozen positions once read as "caught up").
    const t0 = Date.now();
    expect(await replies.ask(() => undefined)).toBe("none");
    expect(Date.now() - t0).toBeGreaterThanOrEqual(190);
    const pending = replies.ask(() => undefined);
    replies.abandon();
    expect(await pending).toBe("none");
  });
});
