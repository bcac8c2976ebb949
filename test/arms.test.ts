import { describe, expect, it } from "vitest";
import { createArms, parseArms } from "../actors/quality/index.js";
import { ConfigError, loadConfig } from "../bin/config.js";

/** Users split by a stable hash into arms, settings checked at start. */
describe("A/B arms", () => {
  const TWO =
    '[{"name":"design","share":50,"ranker":"design"},{"name":"blend","share":50,"ranker":"blend"}]';

  it("puts each user in one arm, the same every time, in proportion to the shares", () => {
    const arms = createArms(parseArms(TWO));
    const again = createArms(parseArms(TWO));
    const counts: Record<string, number> = { design: 0, blend: 0 };
    for (let u = 0; u < 20_000; u++) {
      const a = arms.armOf(String(u));
      expect(again.armOf(String(u)).name).toBe(a.name);
      counts[a.name]!++;
    }
    expect(counts.design! / 20_000).toBeGreaterThan(0.48);
    expect(counts.design! / 20_000).toBeLessThan(0.52);
    // 1:3 shares.
    const skew = createArms([
      { name: "a", share: 1, ranker: "design" },
      { name: "b", share: 3, ranker: "blend" },
    ]);
    let a = 0;
    for (let u = 0; u < 20_000; u++) if (skew.armOf(`u${u}`).name === "a") a++;
    expect(a / 20_000).toBeGreaterThan(0.23);
    expect(a / 20_000).toBeLessThan(0.27);
  });

  it("does not follow the partitioning (the salt): both arms in every partition", async () => {
    const { partitionOf } = await import("../actors/contract/partition.js");
    const arms = createArms(parseArms(TWO));
    const seen = new Set<string>();
    for (let u = 0; u < 2000; u++)
      seen.add(`${partitionOf(String(u), 8)}:${arms.armOf(String(u)).name}`);
    expect(seen.size).toBe(16);
  });

  it("reads blend settings per arm", () => {
    const [, b] = parseArms(
      '[{"name":"a","share":1,"ranker":"design"},{"name":"b","share":1,"ranker":"blend","blend":{"mode":"rank","weights":{"HISTORY":2,"TRENDING":1}}}]',
    );
    expect(b!.blend).toEqual({ mode: "rank", weights: { HISTORY: 2, TRENDING: 1 } });
  });

  it.each([
    ["not json", "expected a JSON array of arms"],
    ["[]", "at least one arm"],
    ['[{"name":"a","share":0,"ranker":"blend"}]', 'arm "a": share must be a number > 0'],
    ['[{"name":"a","share":1,"ranker":"als"}]', 'arm "a": ranker must be "blend" or "design"'],
    [
      '[{"name":"a","share":1,"ranker":"blend"},{"name":"a","share":1,"ranker":"design"}]',
      'arm 2: name "a" is taken',
    ],
    [
      '[{"name":"a","share":1,"ranker":"design","blend":{"mode":"rank","weights":{}}}]',
      'blend settings need ranker "blend"',
    ],
    [
      '[{"name":"a","share":1,"ranker":"blend","blend":{"mode":"rank","weights":{"ALS":1}}}]',
      'unknown source "ALS"',
    ],
    ['[{"name":"a","share":1,"ranker":"blend","weight":2}]', 'unknown field "weight"'],
  ])("rejects ARMS=%s at start, naming the setting and the arm", (value, message) => {
    expect(() => loadConfig({ ARMS: value })).toThrow(ConfigError);
    expect(() => loadConfig({ ARMS: value })).toThrow(`ARMS is not valid: `);
    expect(() => loadConfig({ ARMS: value })).toThrow(message);
  });

  it("passes valid arms to the pipeline, none when unset", () => {
    expect(loadConfig({ ARMS: TWO }).pipeline.arms?.map((a) => a.name)).toEqual([
      "design",
      "blend",
    ]);
    expect(loadConfig({}).pipeline.arms).toBeUndefined();
  });
});
