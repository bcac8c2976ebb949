import { describe, expect, it } from "vitest";
import {
  createFallbackActor,
  type RecommendRequest,
  createPopularityTable,
  createJoinHandler,
} from "../actors/stages/index.js";
import { createStageState } from "../state/store.js";
import { BackendUnavailableError, type Recommendations } from "../connectors/grpc/backend.js";

const HOUR = 3_600_000;
const NOW = Date.parse("2026-11-20T12:00:00Z");

function ask(actor: ReturnType<typeof createFallbackActor>, userId: string, n: number) {
  let answer: Recommendations | BackendUnavailableError | undefined;
  const req: RecommendRequest = { userId, n, done: (r) => (answer = r) };
  return actor.sendAndWait(req).then(() => answer);
}

describe("the fallback actor of a partition", () => {
  const table = createPopularityTable();
  for (const [item, category, purchases] of [
    ["p1", "books", 5],
    ["p2", "books", 3],
    ["p3", "toys", 9],
  ] as const)
    table.apply({ item, category, brand: "b", purchases, avgPrice: 10, wm: NOW });

  it("answers 'not serving' while its popularity-join is not running, and keeps running", async () => {
    (table as { initialised: boolean }).initialised = true;
    const actor = createFallbackActor({
      partition: 3,
      join: () => undefined,
      table,
      userOutOfOrdernessMs: 600_000,
      size: 10,
      score: 0.1,
    });
    await actor.start();
    const answer = await ask(actor, "u1", 5);
    expect(answer).toBeInstanceOf(BackendUnavailableError);
    expect((answer as Error).message).toMatch(/partition 3 is not serving yet/);
    expect(actor.getStatus()).toBe("running");
    await actor.stop();
  });

  it("joins the user's profile with the table and fills from the overall top", async () => {
    const state = createStageState();
    const join = createJoinHandler(state, { purchaseExclusionMs: 24 * HOUR });
    state.map("profile").set("u1", { u: "u1", top: [["books", 4]], pur: [], wm: NOW });
    const actor = createFallbackActor({
      partition: 0,
      join: () => join,
      table,
      userOutOfOrdernessMs: 600_000,
      size: 10,
      score: 0.1,
    });
    await actor.start();
    const answer = (await ask(actor, "u1", 3)) as Recommendations;
    // books interest 4: p1 4×5/100 = 0.2, p2 4×3/100 = 0.12; then the top overall: p3 (9).
    expect(answer.items.map((i) => [i.itemId, i.score, i.source])).toEqual([
      ["p1", 0.2, "PERSONALIZED"],
      ["p2", 0.12, "PERSONALIZED"],
      ["p3", 0.1, "POPULAR_FALLBACK"],
    ]);
    expect(answer.watermark).toBe(NOW - 600_000);
    await actor.stop();
  });

  it("answers in place exactly what its mailbox answers, and 'not serving' unless running", async () => {
    const state = createStageState();
    const join = createJoinHandler(state, { purchaseExclusionMs: 24 * HOUR });
    state.map("profile").set("u1", { u: "u1", top: [["books", 4]], pur: [], wm: NOW });
    let joinRunning = true;
    const actor = createFallbackActor({
      partition: 5,
      join: () => (joinRunning ? join : undefined),
      table,
      userOutOfOrdernessMs: 600_000,
      size: 10,
      score: 0.1,
    });
    // Created but not started (a restart in its backoff): not serving.
    expect(actor.answer("u1", 3)).toBeInstanceOf(BackendUnavailableError);
    await actor.start();
    expect(actor.answer("u1", 3)).toEqual(await ask(actor, "u1", 3));
    expect(actor.answer("nobody", 2)).toEqual(await ask(actor, "nobody", 2));
    // Its popularity-join restoring or handed over: not serving, from either path.
    joinRunning = false;
    const inPlace = actor.answer("u1", 3);
    expect(inPlace).toBeInstanceOf(BackendUnavailableError);
    expect((inPlace as Error).message).toMatch(/partition 5 is not serving yet/);
    expect(await ask(actor, "u1", 3)).toBeInstanceOf(BackendUnavailableError);
    joinRunning = true;
    await actor.stop();
    expect(actor.answer("u1", 3)).toBeInstanceOf(BackendUnavailableError);
  });
});
