import { fileURLToPath } from "node:url";
import { defineConfig } from "vitest/config";
import { sourceAliases } from "../../vitest.aliases.js";
import { SummaryReporter } from "./support/summary-reporter.js";

// The reliability suite: real nats-servers, worker and dispatcher processes killed on purpose, load
// and hostile input. Slow by design, so it is kept out of `npm test` and run with
// `npm run test:reliability`. Files run one at a time: they measure recovery times and memory, and
// two at once on a 2-core machine would measure each other.
export default defineConfig({
  root: fileURLToPath(new URL("../..", import.meta.url)),
  resolve: { alias: sourceAliases },
  test: {
    include: ["test/reliability/**/*.test.ts"],
    exclude: ["**/node_modules/**"],
    testTimeout: 180_000,
    hookTimeout: 90_000,
    teardownTimeout: 30_000,
    pool: "forks",
    fileParallelism: false,
    reporters: ["default", new SummaryReporter()],
  },
});
