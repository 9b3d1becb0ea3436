import { defineConfig } from "vitest/config";
import { sourceAliases } from "./vitest.aliases.js";

// Tests run against source, not built output (see vitest.aliases.ts).
export default defineConfig({
  resolve: { alias: sourceAliases },
  test: {
    include: ["packages/*/test/**/*.test.ts", "test/**/*.test.ts"],
    exclude: ["**/node_modules/**", "test/reliability/**", "test/compose/**", "test/bench/**"],
    testTimeout: 60_000,
    hookTimeout: 60_000,
    pool: "forks",
  },
});
