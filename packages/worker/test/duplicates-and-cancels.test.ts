// Messages from careless or hostile clients about a task that runs: the same taskID published
// again without Nats-Msg-Id, and cancel requests that break the schema or outlive an attempt.
import { jetstream } from "@nats-io/jetstream";
import { Kvm } from "@nats-io/kv";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import type { TaskLease } from "@station-coding/protocol";
import { MAX_ERROR_BYTES } from "@station-coding/protocol";
import { waitFor } from "@station-coding/testkit";
import type { Env } from "@station-coding/testkit/worker";
import {
  ScriptedDriver,
  consumerInfo,
  eventsOf,
  publishTask,
  queuedTasks,
  resultMessages,
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

describe("the same taskID delivered again while it runs", () => {
  it("runs a taskID published three times at once without Nats-Msg-Id once, and settles every copy", async () => {
    const driver = new ScriptedDriver();
    await startWorker(env, driver, { concurrency: 4 });
    const task = { taskID: "thrice", prompt: script({ sleep: 1_000 }, { text: "once" }) };
    await Promise.all([publishTask(env, task), publishTask(env, task), publishTask(env, task)]);
    const result = await waitResult(env, "thrice");
    expect(result).toMatchObject({ status: "completed", result: "once" });
    await waitFor(
      async () => (await queuedTasks(env)) === 0 && (await consumerInfo(env)).num_ack_pending === 0,
      {
        message: "all three messages to be acked",
      },
    );
    expect(driver.calls).toHaveLength(1);
    expect(driver.overlaps).toBe(0);
    const events = await eventsOf(env, "thrice");
    expect(events.filter((e) => e.type === "task_started")).toHaveLength(1);
    expect(events.filter((e) => e.type === "prompt_sent")).toHaveLength(1);
    expect(await resultMessages(env, "thrice")).toBe(1);
    expect((await consumerInfo(env)).num_redelivered).toBe(0);
    expect(env.logs.join("")).toContain("another message with the taskID of a task that runs here");
  });
});

describe("cancel requests", () => {
  it("a cancel whose reason is over the limit still cancels the running task at once, saying so", async () => {
    const driver = new ScriptedDriver();
    await startWorker(env, driver);
    await publishTask(env, { taskID: "long-reason", prompt: script({ sleep: 30_000 }) });
    await waitFor(() => driver.calls.length === 1, { message: "the task to run" });
    await jetstream(env.nc).publish(
      env.names.cancelSubject("long-reason"),
      JSON.stringify({ taskID: "long-reason", reason: "r".repeat(1_000_000) }),
    );
    const result = await waitResult(env, "long-reason");
    expect(result.status).toBe("cancelled");
    expect(result.error).toMatch(
      /^task cancelled: the request was not valid and its reason is not shown: reason "r{59}…: must be at most 1024 characters$/,
    );
    const error = (await eventsOf(env, "long-reason")).find((e) => e.type === "error");
    expect(error?.content).toBe(result.error);
    expect(Buffer.byteLength(result.error!)).toBeLessThan(MAX_ERROR_BYTES);
    expect(await resultMessages(env, "long-reason")).toBe(1);
  });

  it("ignores a message on the cancel subject that is not a cancel request", async () => {
    const driver = new ScriptedDriver();
    await startWorker(env, driver);
    await publishTask(env, { taskID: "junk-cancel", prompt: script({ sleep: 1_000 }, { text: "finished" }) });
    await waitFor(() => driver.calls.length === 1, { message: "the task to run" });
    await jetstream(env.nc).publish(env.names.cancelSubject("junk-cancel"), "\u0000 not a cancel");
    expect(await waitResult(env, "junk-cancel")).toMatchObject({ status: "completed", result: "finished" });
  });

  it("a cancel stored during an earlier attempt is not reported as one from before the task started", async () => {
    // A worker that died running attempt 1 left an expired lease; the cancel came meanwhile.
    const leases = await new Kvm(env.nc).open(env.names.kv.leases);
    const dead: TaskLease = {
      taskID: "late-cx",
      state: "running",
      attempts: 1,
      workerID: "dead-worker",
      expiresAt: Date.now() - 1,
    };
    await leases.put("task.late-cx", JSON.stringify(dead));
    await jetstream(env.nc).publish(
      env.names.cancelSubject("late-cx"),
      JSON.stringify({ taskID: "late-cx", reason: "not needed any more" }),
    );
    const driver = new ScriptedDriver();
    await publishTask(env, { taskID: "late-cx", prompt: script({ text: "must not run" }) });
    await startWorker(env, driver);
    const result = await waitResult(env, "late-cx");
    expect(result).toMatchObject({
      status: "cancelled",
      error: "task cancelled during an earlier attempt of the task: not needed any more",
    });
    expect(result.metrics.attempts).toBe(2);
    expect(driver.calls).toHaveLength(0);
  });
});
