import { describe, expect, it } from "vitest";
import { Writable } from "node:stream";
import { createLogger } from "../bin/log.js";

/* The engine logs readable lines on a terminal and JSON lines elsewhere. */

function sink(isTTY: boolean) {
  const lines: string[] = [];
  const out = Object.assign(
    new Writable({
      write(chunk: Buffer, _enc, done) {
        lines.push(chunk.toString());
        done();
      },
    }),
    { isTTY },
  );
  return { out, text: () => lines.join("") };
}

describe("the engine's log lines", () => {
  it("are readable on a terminal: time, level name and message, no JSON", () => {
    const s = sink(true);
    createLogger("info", s.out).info({ port: 50051 }, "reco-stream ready");
    const text = s.text();
    // eslint-disable-next-line no-control-regex
    const plain = text.replace(/\u001b\[[0-9;]*m/g, "");
    expect(plain).toMatch(/^\[\d\d:\d\d:\d\d\.\d{3}\] INFO: reco-stream ready\n\s+port: 50051\n$/);
    expect(plain).not.toContain('{"level"');
  });

  it("are JSON lines when not on a terminal", () => {
    const s = sink(false);
    createLogger("info", s.out).info({ port: 50051 }, "reco-stream ready");
    const line = JSON.parse(s.text()) as Record<string, unknown>;
    expect(line).toMatchObject({ level: 30, msg: "reco-stream ready", port: 50051 });
  });
});
