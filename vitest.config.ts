import { fileURLToPath } from "node:url";
import { defineConfig } from "vitest/config";

const pkg = (name: string) => fileURLToPath(new URL(`./packages/${name}/src/index.ts`, import.meta.url));

// Tests run against source, not built output: every workspace package is aliased to its src entry.
export default defineConfig({
  resolve: {
    alias: {
      "@station-coding/protocol": pkg("protocol"),
      "@station-coding/testkit": pkg("testkit"),
      "@station-coding/worker": pkg("worker"),
      "@station-coding/dispatcher": pkg("dispatcher"),
      "@station-coding/cli": pkg("cli"),
    },
  },
  test: {
    include: ["packages/*/test/**/*.test.ts", "test/**/*.test.ts"],
    exclude: ["**/node_modules/**", "test/reliability/**", "test/compose/**", "test/bench/**"],
    testTimeout: 60_000,
    hookTimeout: 60_000,
    pool: "forks",
  },
});
