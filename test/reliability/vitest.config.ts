import { fileURLToPath } from "node:url";
import { defineConfig } from "vitest/config";
import { SummaryReporter } from "./support/summary-reporter.js";

const pkg = (name: string) => fileURLToPath(new URL(`../../packages/${name}/src/index.ts`, import.meta.url));

// The reliability suite: real nats-servers, worker and dispatcher processes killed on purpose, load
// and hostile input. Slow by design, so it is kept out of `npm test` and run with
// `npm run test:reliability`. Files run one at a time: they measure recovery times and memory, and
// two at once on a 2-core machine would measure each other.
export default defineConfig({
  root: fileURLToPath(new URL("../..", import.meta.url)),
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
