import { execFileSync } from "node:child_process";
import { describe, expect, it } from "vitest";
import {
  RUNTIME_ENV,
  RUNTIME_NODE_OPTIONS,
  runtimeEnv,
  runtimeMissing,
} from "../bin/node-runtime.mjs";

/**
 * Node's flags and malloc's settings that every process of the app starts with
 * (bin/node-runtime.mjs). `reco start` relaunching itself with them, and its children inheriting
 * them, is in test/start.test.ts.
 */

/** The young generation's largest size (MiB) in a node process churning short-lived objects. */
function youngGenerationMiB(env: NodeJS.ProcessEnv): number {
  const script = `
    const { getHeapSpaceStatistics } = require("node:v8");
    let most = 0, keep = [];
    for (let i = 0; i < 3e6; i++) {
      keep.push({ i, s: "x" + i });
      if (keep.length > 20000) keep = [];
      if (i % 10000 === 0)
        most = Math.max(most, getHeapSpaceStatistics().find((s) => s.space_name === "new_space").space_size);
    }
    process.stdout.write(String(most / 2 ** 20));
  `;
  return Number(execFileSync(process.execPath, ["-e", script], { env, encoding: "utf8" }));
}

describe("node's runtime settings", () => {
  it("are added to an environment without them, and a user's own value is kept", () => {
    const env = runtimeEnv({ PATH: "/bin" });
    for (const [k, v] of Object.entries(RUNTIME_ENV)) expect(env[k]).toBe(v);
    expect(env.NODE_OPTIONS!.split(" ")).toEqual([...RUNTIME_NODE_OPTIONS]);
    expect(runtimeMissing(env, [])).toEqual([]);

    const own = runtimeEnv({
      MALLOC_ARENA_MAX: "4",
      NODE_OPTIONS: "--max-semi-space-size=4 --enable-source-maps",
    });
    expect(own.MALLOC_ARENA_MAX).toBe("4");
    expect(own.NODE_OPTIONS).toBe("--max-semi-space-size=4 --enable-source-maps");
  });

  it("name what a process started without", () => {
    expect(runtimeMissing({}, [])).toEqual([...Object.keys(RUNTIME_ENV), ...RUNTIME_NODE_OPTIONS]);
    // A flag on node's command line counts as given.
    expect(runtimeMissing({ MALLOC_ARENA_MAX: "2" }, ["--max-semi-space-size=4"])).toEqual([]);
  });

  it("let V8's young generation grow past node's default in a process started with them (32 MiB semi-spaces)", () => {
    const bare = { ...process.env, NODE_OPTIONS: "" };
    const without = youngGenerationMiB(bare);
    const withThem = youngGenerationMiB(runtimeEnv(bare));
    expect(without).toBeLessThanOrEqual(32);
    expect(withThem).toBeGreaterThan(32);
    expect(withThem).toBeLessThanOrEqual(64);
  }, 60_000);
});
