import { defineConfig } from "vitest/config";

export default defineConfig({
  test: {
    projects: [
      {
        test: {
          name: "unit",
          include: ["test/unit/**/*.test.ts"],
          testTimeout: 30_000,
        },
      },
      {
        test: {
          // Real servers and CLI processes on loopback and temp dirs; no Kafka or Redis.
          name: "system",
          include: ["test/system/**/*.test.ts"],
          testTimeout: 60_000,
        },
      },
      {
        test: {
          name: "integration",
          include: ["test/integration/**/*.test.ts"],
          globalSetup: ["test/integration/global-setup.ts"],
          testTimeout: 120_000,
          hookTimeout: 180_000,
          // One broker and one Redis server are shared: run integration files one at a time.
          fileParallelism: false,
        },
      },
    ],
  },
});
