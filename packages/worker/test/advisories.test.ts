// Max-deliveries advisories are plain messages: on a server without permissions any client can
// forge one. The worker believes one only where the server's own state agrees (the genuine path,
// a task that crashes its workers until max_deliver, is in crash.test.ts).
import { DeadLetters } from "@station-coding/protocol";
import { waitFor } from "@station-coding/testkit";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import type { Env } from "@station-coding/testkit/worker";
import {
  ScriptedDriver,
  publishTask,
  script,
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

/** Publishes what the server would send when the consumer gave up on message `streamSeq`. */
function forgeAdvisory(streamSeq: number, deliveries: number): void {
  const { tasks } = env.names.streams;
  env.nc.publish(
    `$JS.EVENT.ADVISORY.CONSUMER.MAX_DELIVERIES.${tasks}.${env.names.consumer}`,
    JSON.stringify({
      type: "io.nats.jetstream.advisory.v1.max_deliver",
      id: "forged",
      timestamp: new Date().toISOString(),
      stream: tasks,
      consumer: env.names.consumer,
      stream_seq: streamSeq,
      deliveries,
    }),
  );
}

/** The reasons the workers logged for ignoring advisories. */
function ignored(): string[] {
  return env.logs
    .map((line) => JSON.parse(line) as { msg?: string; why?: string })
    .filter((entry) => entry.msg?.startsWith("max-deliveries advisory") === true)
    .map((entry) => entry.why ?? "");
}

async function deadLetters(): Promise<string[]> {
  return (await new DeadLetters(env.nc, env.names).list()).map((l) => l.taskID);
}

describe("forged max-deliveries advisories", () => {
  it("cannot end a running task whose worker renews its lease", async () => {
    const driver = new ScriptedDriver();
    await startWorker(env, driver, { maxDeliver: 5 });
    const seq = await publishTask(env, {
      taskID: "healthy",
      prompt: script({ sleep: 4_000 }, { text: "done" }),
    });
    await waitFor(() => driver.calls.length === 1, { message: "the task to run" });
    forgeAdvisory(seq, 5);
    await waitFor(() => ignored().length === 1, { message: "the advisory to be judged" });
    expect(ignored()[0]).toMatch(/^worker \S+ holds the task's lease and renews it$/);
    expect(await waitResult(env, "healthy")).toMatchObject({ status: "completed", result: "done" });
    expect(driver.calls).toHaveLength(1);
    expect(await deadLetters()).toEqual([]);
  });

  it("cannot end a queued task the consumer never delivered", async () => {
    const driver = new ScriptedDriver();
    await startWorker(env, driver, { maxDeliver: 5, concurrency: 1 });
    await publishTask(env, { taskID: "first", prompt: script({ sleep: 1_500 }, { text: "first" }) });
    await waitFor(() => driver.calls.length === 1, { message: "the first task to run" });
    const queued = await publishTask(env, { taskID: "queued", prompt: script({ text: "second" }) });
    forgeAdvisory(queued, 5);
    await waitFor(() => ignored().length === 1, { message: "the advisory to be judged" });
    expect(ignored()).toEqual(["the consumer never delivered that message"]);
    expect(await waitResult(env, "queued")).toMatchObject({ status: "completed", result: "second" });
    expect(await deadLetters()).toEqual([]);
  });

  it("are ignored outright when the consumer has no max_deliver (the default)", async () => {
    const driver = new ScriptedDriver();
    await startWorker(env, driver);
    const seq = await publishTask(env, {
      taskID: "default",
      prompt: script({ sleep: 1_000 }, { text: "ok" }),
    });
    await waitFor(() => driver.calls.length === 1, { message: "the task to run" });
    forgeAdvisory(seq, 99);
    await waitFor(() => ignored().length === 1, { message: "the advisory to be judged" });
    expect(ignored()).toEqual(["the task consumer has no max_deliver"]);
    expect((await waitResult(env, "default")).status).toBe("completed");
    expect(await deadLetters()).toEqual([]);
  });
});
