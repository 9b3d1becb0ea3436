import { fileURLToPath } from "node:url";
import { defineConfig } from "vitest/config";

const pkg = (name: string) => fileURLToPath(new URL(`../../packages/${name}/src/index.ts`, import.meta.url));

// The compose suite: docker-compose.yaml and deploy/Dockerfile run for real on a Docker engine that
// the shared script (../shared/tools/docker-engine.sh) installs and starts. The global setup builds
// the images once; the files run one at a time (each runs containers of its own, and two at once
// would starve a 2-core machine). `npm run test:compose`.
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
    include: ["test/compose/**/*.test.ts"],
    exclude: ["**/node_modules/**"],
    globalSetup: ["test/compose/support/global-setup.ts"],
    testTimeout: 300_000,
    hookTimeout: 300_000,
    teardownTimeout: 60_000,
    pool: "forks",
    fileParallelism: false,
    // testcontainers would start its reaper (testcontainers/ryuk), an image no registry here has
    // (the tests remove what they start themselves); and where it takes itself to run inside a
    // container it reaches published ports through the bridge's gateway (172.17.0.1): loopback only.
    env: { TESTCONTAINERS_RYUK_DISABLED: "true", TESTCONTAINERS_HOST_OVERRIDE: "127.0.0.1" },
  },
});
