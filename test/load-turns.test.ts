import { describe, expect, it } from "vitest";
import { createLoadTurns } from "../bin/pipeline/load-turns.js";

/**
 * Loads at process start run one at a time; the next one's LevelDB read used to start only once
 * the load before it had ended, so the event loop waited for every instance's bytes in turn.
 */
describe("load turns", () => {
  it("run loads one at a time in order, the next two's reads started while the one before runs", async () => {
    const turns = createLoadTurns();
    const log: string[] = [];
    const gates: (() => void)[] = [];
    const load = (name: string) => () =>
      new Promise<string>((resolve) => {
        log.push(`start ${name}`);
        gates.push(() => {
          log.push(`end ${name}`);
          resolve(name);
        });
      });
    const done = ["a", "b", "c", "d"].map((name) =>
      turns.run(load(name), () => log.push(`read ${name}`)),
    );
    await new Promise((r) => setImmediate(r));
    // a runs; b and c read ahead as a begins; d waits without reading (two reads ahead at most).
    expect(log).toEqual(["read b", "read c", "start a"]);
    gates.shift()!();
    await new Promise((r) => setImmediate(r));
    // b's bytes are there: d reads as b begins, c is not read again.
    expect(log).toEqual(["read b", "read c", "start a", "end a", "read d", "start b"]);
    for (let k = 0; k < 3; k++) {
      gates.shift()!();
      await new Promise((r) => setImmediate(r));
    }
    expect(await Promise.all(done)).toEqual(["a", "b", "c", "d"]);
    expect(log.slice(6)).toEqual(["end b", "start c", "end c", "start d", "end d"]);
  });

  it("reads a load asked for while another runs at once, and goes on after a failed load", async () => {
    const turns = createLoadTurns();
    const log: string[] = [];
    let release = () => undefined as void;
    const first = turns.run(
      () => new Promise<void>((_, reject) => (release = () => reject(new Error("corrupt")))),
    );
    await new Promise((r) => setImmediate(r));
    const second = turns.run(
      async () => void log.push("load 2"),
      () => log.push("read 2"),
    );
    expect(log).toEqual(["read 2"]);
    release();
    await expect(first).rejects.toThrow("corrupt");
    await second;
    expect(log).toEqual(["read 2", "load 2"]);
  });
});
