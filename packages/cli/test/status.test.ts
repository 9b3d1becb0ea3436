// `status` of the built CLI: a live worker busy with one task while another waits in the queue.
import { afterAll, afterEach, beforeAll, expect, it } from "vitest";
import type { DispatcherStatus } from "@station-coding/dispatcher";
import { uniqueName, waitFor } from "@station-coding/testkit";
import type { Env } from "@station-coding/testkit/worker";
import { ScriptedDriver, script, startEnv, startWorker } from "@station-coding/testkit/worker";
import { Cli } from "./support/cli.js";

let env: Env;
let cli: Cli;
let workerID: string;

beforeAll(async () => {
  env = await startEnv();
  const worker = await startWorker(env, new ScriptedDriver(), { concurrency: 1, shutdownGrace: 500 });
  workerID = worker.workerID;
  cli = new Cli(env.server.url);
});
afterEach(async () => {
  await cli.killAll();
});
afterAll(async () => {
  await env?.close();
});

async function status(): Promise<DispatcherStatus> {
  const run = await cli.run(["status", "--json"]);
  expect(run.code, run.stderr).toBe(0);
  return JSON.parse(run.stdout) as DispatcherStatus;
}

it("shows a live worker busy with a task and a second task waiting in the queue", async () => {
  const busy = uniqueName("busy");
  const queued = uniqueName("queued");
  const long = script({ sleep: 30_000 });
  expect((await cli.run(["submit", long, "--task-id", busy, "--no-wait"])).code).toBe(0);
  await waitFor(async () => (await status()).workers[0]?.tasks.includes(busy), {
    timeout: 15_000,
    message: `worker running ${busy}`,
  });
  expect((await cli.run(["submit", long, "--task-id", queued, "--no-wait"])).code).toBe(0);

  const seen = await waitFor(
    async () => {
      const s = await status();
      return s.tasks.consumer?.pending === 1 && s.workers[0]?.inFlight === 1 ? s : undefined;
    },
    { timeout: 15_000, message: "one task in flight and one pending" },
  );
  expect(seen.tasks.messages).toBe(2);
  expect(seen.tasks.consumer).toMatchObject({ ackPending: 1, redelivered: 0 });
  expect(seen.workers).toEqual([
    expect.objectContaining({ workerID, liveness: "alive", state: "running", concurrency: 1, tasks: [busy] }),
  ]);
  expect(seen.deadLetters).toBe(0);

  const human = await cli.run(["status"]);
  expect(human.code, human.stderr).toBe(0);
  expect(human.stdout).toContain("1 pending, 1 in flight (ack pending), 0 redelivered");
  expect(human.stdout).toContain("workers       1 alive, 0 dead");
  expect(human.stdout).toMatch(new RegExp(`${workerID}\\s+running\\s+1/1\\s+0\\s+0\\s+\\S+ ago\\s+${busy}`));

  // The queued task is cancelled as soon as the worker picks it up; the busy one stops now.
  expect((await cli.run(["cancel", queued])).code).toBe(0);
  expect((await cli.run(["cancel", busy])).code).toBe(0);
  expect((await cli.run(["result", queued, "--wait", "--wait-timeout", "15s"])).code).toBe(4);
});
