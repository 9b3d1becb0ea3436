import { execFile } from "node:child_process";
import { promisify } from "node:util";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import type { Env } from "@station-coding/testkit/worker";
import { startEnv, startWorker } from "@station-coding/testkit/worker";

const run = promisify(execFile);
let env: Env;
beforeEach(async () => {
  env = await startEnv();
  await startWorker(env);
});
afterEach(async () => {
  await env.close();
});

describe("README examples", () => {
  it("examples/publish-raw.mjs publishes plain JSON and prints the live events and the result", async () => {
    const { stdout } = await run(process.execPath, ["examples/publish-raw.mjs", "add a README", "raw-1"], {
      env: { ...process.env, NATS_URL: env.server.url },
      timeout: 30_000,
    });
    expect(stdout).toMatch(/stored: \{"stream":\s?"CODING_TASKS",\s?"seq":\s?1/);
    expect(stdout).toMatch(/^1 task_started/m);
    expect(stdout).toContain("result: completed echo: add a README");
  });
});
