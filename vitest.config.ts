import { defineConfig } from "vitest/config";

export default defineConfig({
  test: {
    include: ["test/**/*.test.ts"],
    testTimeout: 60_000,
    hookTimeout: 60_000,
    // Integration suites each spawn their own nats-server; two cores cannot run many at once.
    fileParallelism: true,
    maxWorkers: 2,
  },
});
