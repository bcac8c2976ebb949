import { describe, expect, it } from "vitest";
import { createStageState } from "../state/store.js";
import { createParseHandler } from "../actors/plan/index.js";
import { HOUR } from "../actors/contract/index.js";
import { fakeOutput } from "./helpers/stage.js";

/**
 * Parse's snapshot may be taken after progress moved and before that progress was
 * broadcast to the partitions without records (broadcasts are at most every broadcastEveryMs).
 * A parse restarted from it must broadcast the restored progress again: it used to take the
 * restored progress as already broadcast, so after a SIGKILL at the end of a log (IDLE_TIMEOUT_MS=0,
 * nothing more to move progress) those partitions kept an older watermark for good.
 */
describe("parse restarted from a snapshot", () => {
  const P = 3;
  const T0 = Date.UTC(2024, 0, 1, 10);
  const every = [0, 1, 2].flatMap((p) => [`reco.parse.${p}`, `reco.items.${p}`]);
  const create = (progress?: number) => {
    const state = createStageState();
    if (progress !== undefined) state.meta = { progress, seq: 42 };
    const { out, rec } = fakeOutput();
    const h = createParseHandler(state, out, {
      partitions: P,
      preset: "ecommerce",
      dedupeHorizonMs: HOUR,
      dedupeMaxIds: 100,
      maxEventBytes: 64 * 1024,
      broadcastEveryMs: 100,
      clock: () => 1_000_000,
    });
    return { h, rec };
  };

  it("should broadcast the restored progress to every partition at its first tick", () => {
    const { h, rec } = create(T0);
    h.tick!();
    expect([...rec.touches].sort()).toEqual([...every].sort());
    expect(rec.progress.at(-1)).toBe(T0);
    // Once.
    rec.touches.length = 0;
    h.tick!();
    expect(rec.touches).toEqual([]);
  });

  it("should broadcast nothing before any event (no progress to tell)", () => {
    const { h, rec } = create();
    h.tick!();
    expect(rec.touches).toEqual([]);
  });
});
