import { defineConfig } from "vitest/config";

export default defineConfig({
  test: {
    include: ["test/**/*.test.ts"],
    testTimeout: 30_000,
    hookTimeout: 60_000,
    // Integration tests spawn redis-server and Tollgate processes; two cores
    // are shared, so files run two at a time at most.
    maxWorkers: 2,
    globalSetup: ["test/helpers/global-setup.ts"],
  },
});
