import { join } from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { DeadLetters } from "@station-coding/protocol";
import { waitFor } from "@station-coding/testkit";
import type { Env } from "@station-coding/testkit/worker";
import {
  ScriptedDriver,
  eventsOf,
  publishTask,
  queuedTasks,
  resultMessages,
  script,
  spawnWorker,
  startEnv,
  startWorker,
  waitResult,
} from "@station-coding/testkit/worker";

let env: Env;
beforeEach(async () => {
  env = await startEnv();
});
afterEach(async () => {
  await env.close();
});

describe("crash recovery with real worker processes", () => {
  it("redelivers the task of a worker killed with SIGKILL mid-task; another worker completes it exactly once", async () => {
    const child = await spawnWorker(env, { ackWait: 1_500 });
    const once = join(env.workspaceDir, "slept-once");
    await publishTask(env, {
      taskID: "crashy",
      prompt: script({ text: "working" }, { sleep: 60_000, onceFile: once }),
    });
    await waitFor(async () => (await eventsOf(env, "crashy")).some((e) => e.type === "text"), {
      timeout: 20_000,
      message: "child started the task",
    });
    child.kill("SIGKILL");
    const killedAt = Date.now();
    await waitFor(() => child.exitCode !== null || child.signalCode !== null, { message: "child gone" });

    // The second run skips the long sleep (its marker file exists) and finishes.
    const survivor = new ScriptedDriver();
    await startWorker(env, survivor, { ackWait: 1_500 });
    const result = await waitResult(env, "crashy", 90_000);
    const recovery = Date.now() - killedAt;
    expect(recovery).toBeLessThan(30_000);
    expect(survivor.calls).toHaveLength(1);
    expect(result.status).toBe("completed");
    expect(result.metrics.attempts).toBe(2);
    expect(await resultMessages(env, "crashy")).toBe(1);
    const started = (await eventsOf(env, "crashy")).filter((e) => e.type === "task_started");
    expect(started.map((e) => e.attempt)).toEqual([1, 2]);
    expect(started[0]!.workerID).not.toBe(started[1]!.workerID);
  }, 120_000);

  it("dead-letters a poison task that crashes its worker on every delivery, and keeps serving others", async () => {
    const crashes: number[] = [];
    await publishTask(env, { taskID: "poison", prompt: script({ crash: true }) });
    // Each run kills the worker process; restart a worker after each crash, as a supervisor would.
    for (let run = 0; run < 3; run += 1) {
      const child = await spawnWorker(env, { ackWait: 1_000, maxAttempts: 3 });
      await waitFor(() => child.exitCode !== null || child.signalCode !== null, {
        timeout: 20_000,
        message: `worker run ${run + 1} to crash on the poison task`,
      });
      crashes.push(Date.now());
    }
    const healthy = new ScriptedDriver();
    await startWorker(env, healthy, { ackWait: 1_000, maxAttempts: 3 });
    await publishTask(env, { taskID: "healthy", prompt: script({ text: "fine" }) });
    const poison = await waitResult(env, "poison", 30_000);
    expect(poison.status).toBe("error");
    expect(poison.errorCode).toBe("RETRIES_EXHAUSTED");
    expect(poison.error).toContain("gave up after 3 attempts");
    expect((await waitResult(env, "healthy")).status).toBe("completed");
    expect(healthy.calls.map((c) => c.taskID)).toEqual(["healthy"]);
    const letters = await new DeadLetters(env.nc, env.names).list();
    expect(letters.map((l) => [l.taskID, l.attempts])).toEqual([["poison", 3]]);
    await waitFor(async () => (await queuedTasks(env)) === 0, { message: "poison removed from the queue" });
    expect(crashes).toHaveLength(3);
  }, 120_000);

  it("dead-letters a task through the max-deliveries advisory when the consumer's max_deliver is reached", async () => {
    await publishTask(env, { taskID: "maxed", prompt: script({ crash: true }) });
    // Each delivery kills the worker that gets it; a supervisor starts another. Attempt counting alone would
    // allow 10 runs: the server's cap of 2 deliveries ends it, and a live worker handles the advisory. (A
    // delivery may also go to a pull the killed worker left behind, so the number of crashes is at most 2.)
    let crashes = 0;
    for (let run = 0; run < 4 && !(await env.lookups.result("maxed")); run += 1) {
      const child = await spawnWorker(env, { ackWait: 1_000, maxAttempts: 10, maxDeliver: 2 });
      await waitFor(
        async () =>
          child.exitCode !== null || child.signalCode !== null || (await env.lookups.result("maxed")),
        { timeout: 20_000, message: `worker ${run + 1} to crash or the task to be dead-lettered` },
      );
      if (child.signalCode !== null) crashes += 1;
    }
    const result = await waitResult(env, "maxed", 30_000);
    expect(result.status).toBe("error");
    expect(result.errorCode).toBe("RETRIES_EXHAUSTED");
    expect(result.error).toContain("max_deliver");
    expect(crashes).toBeGreaterThanOrEqual(1);
    expect(crashes).toBeLessThanOrEqual(2);
    const letters = await new DeadLetters(env.nc, env.names).list();
    expect(letters.map((l) => l.taskID)).toEqual(["maxed"]);
    await waitFor(async () => (await queuedTasks(env)) === 0, { message: "task removed from the stream" });
  }, 120_000);

  it("stops gracefully on SIGTERM: the in-flight task finishes before the process exits", async () => {
    const child = await spawnWorker(env);
    await publishTask(env, { taskID: "sigterm", prompt: script({ sleep: 800 }, { text: "clean exit" }) });
    await waitFor(async () => (await eventsOf(env, "sigterm")).some((e) => e.type === "prompt_sent"), {
      message: "task running in the child",
    });
    child.kill("SIGTERM");
    await waitFor(() => child.exitCode !== null, { timeout: 15_000, message: "child to exit" });
    expect(child.exitCode).toBe(0);
    expect((await env.lookups.result("sigterm"))?.result).toBe("clean exit");
  }, 60_000);
});
