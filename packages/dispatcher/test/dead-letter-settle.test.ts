// A worker writes a dead letter before it publishes the error result and settles the task's
// lease: a replay in that window must wait for the run to settle (or its lease to expire), never
// race it. The window is held open here by writing the lease back as the settling run has it.
import { Kvm } from "@nats-io/kv";
import type { KV } from "@nats-io/kv";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { CodingDispatcher } from "@station-coding/dispatcher";
import { StationError, TaskLease } from "@station-coding/protocol";
import { ScriptedDriver, script, startWorker } from "@station-coding/testkit/worker";
import type { DispatcherEnv } from "./support/dispatcher-env.js";
import { startDispatcherEnv, until } from "./support/dispatcher-env.js";

let env: DispatcherEnv;
let dispatcher: CodingDispatcher;
let leases: KV;
beforeAll(async () => {
  env = await startDispatcherEnv();
  await startWorker(env, new ScriptedDriver(), { maxAttempts: 1 });
  dispatcher = await env.connect();
  leases = await new Kvm(env.nc).open(env.names.kv.leases);
});
afterAll(async () => {
  await env?.close();
});

const flaky = () =>
  script({ fail: { message: "provider overloaded", retryable: true }, times: 1 }, { text: "fine now" });

/** Dead-letters `taskID`, then puts its lease back to `state` held by a live worker until `expiresAt`. */
async function deadWithHeldLease(taskID: string, state: "running" | "publishing", expiresAt: number) {
  const handle = await dispatcher.submit({ taskID, prompt: flaky() });
  expect((await handle.result()).status).toBe("error");
  await until(
    async () => (await dispatcher.deadLetters.list()).some((l) => l.taskID === taskID),
    `the dead letter of ${taskID}`,
  );
  const entry = (await leases.get(`task.${taskID}`))!;
  const lease = TaskLease.parse(entry.json());
  const revision = await leases.update(
    `task.${taskID}`,
    JSON.stringify({ ...lease, state, workerID: "w-settling", expiresAt }),
    entry.revision,
  );
  return { lease, revision };
}

describe("replaying a dead letter whose run has not settled", () => {
  it("waits for the lease to settle, then replays after it", async () => {
    const { lease, revision } = await deadWithHeldLease("settle-1", "publishing", Date.now() + 60_000);
    const replay = dispatcher.deadLetters.replay("settle-1");
    // The settling run finishes: its compare-and-set on its own revision must succeed (a replay
    // that went ahead would have changed the lease under it).
    const done = await leases.update(
      "task.settle-1",
      JSON.stringify({ ...lease, state: "done", workerID: "w-settling" }),
      revision,
    );
    await replay;
    const after = (await leases.get("task.settle-1"))!;
    expect(after.revision).toBeGreaterThan(done);
    // Replayed (or already taken by the worker running the replay).
    expect(["replayed", "running", "publishing", "done"]).toContain(TaskLease.parse(after.json()).state);
    expect(TaskLease.parse(after.json()).generation).toBe((lease.generation ?? 0) + 1);
    const result = await dispatcher.task("settle-1").result();
    expect(result).toMatchObject({ status: "completed", result: "fine now" });
  });

  it("replays once a held lease expires (its worker died)", async () => {
    const expiresAt = Date.now() + 1_000;
    await deadWithHeldLease("settle-2", "running", expiresAt);
    await dispatcher.deadLetters.replay("settle-2");
    expect(Date.now()).toBeGreaterThanOrEqual(expiresAt);
    expect((await dispatcher.task("settle-2").result()).status).toBe("completed");
  });

  it("gives up with a retryable error naming the worker, having changed nothing", async () => {
    const { revision } = await deadWithHeldLease("settle-3", "running", Date.now() + 60_000);
    const error = await dispatcher.deadLetters
      .replay("settle-3", {}, { settleTimeoutMs: 300 })
      .catch((err: unknown) => err);
    expect(error).toBeInstanceOf(StationError);
    expect((error as StationError).retryable).toBe(true);
    expect((error as StationError).message).toMatch(
      /worker w-settling\) is still settling \(lease running\)/,
    );
    expect((await leases.get("task.settle-3"))!.revision).toBe(revision);
    expect((await dispatcher.deadLetters.list()).some((l) => l.taskID === "settle-3")).toBe(true);
  });
});
