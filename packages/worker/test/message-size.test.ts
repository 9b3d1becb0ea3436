// Messages a worker cannot publish as they are: larger than the server's max_payload (1 MiB by
// default), or refused for lack of permission. Each task still ends, once, with what it made kept.
import { Objm } from "@nats-io/obj";
import { afterEach, describe, expect, it } from "vitest";
import { DeadLetters, TaskResult } from "@station-coding/protocol";
import { waitFor } from "@station-coding/testkit";
import type { Env } from "@station-coding/testkit/worker";
import {
  ScriptedDriver,
  consumerInfo,
  eventsOf,
  publishTask,
  queuedTasks,
  script,
  startEnv,
  startWorker,
  waitResult,
} from "@station-coding/testkit/worker";

let env: Env;
afterEach(async () => {
  await env.close();
});

async function storedObject(key: string): Promise<string> {
  const store = await new Objm(env.nc).open(env.names.objectStore);
  return new TextDecoder().decode((await store.getBlob(key)) ?? new Uint8Array());
}

describe("messages larger than the server's max_payload", () => {
  it("publishes a 2 MB answer cut to fit, with the whole result and event in the object store", async () => {
    env = await startEnv();
    await startWorker(env);
    const chunk = "0123456789".repeat(100);
    await publishTask(env, {
      taskID: "long-answer",
      prompt: script({ deltas: { count: 2_000, text: chunk } }),
    });
    const result = await waitResult(env, "long-answer");
    expect(result).toMatchObject({
      status: "completed",
      truncated: true,
      fullResult: { key: "artifacts/long-answer/result.json", kind: "result" },
    });
    expect(result.result).toMatch(/^(0123456789)+\d*…\[truncated\]$/);
    const whole = TaskResult.parse(JSON.parse(await storedObject(result.fullResult!.key)));
    expect(whole.result).toBe(chunk.repeat(2_000));
    expect(whole.truncated).toBeUndefined();

    const text = (await eventsOf(env, "long-answer")).filter((e) => e.type === "text");
    const cut = text.filter((e) => e.truncated === true);
    expect(cut.length).toBeGreaterThan(0);
    for (const event of cut) {
      const full = JSON.parse(await storedObject(event.fullEvent!.key)) as { seq: number; content: string };
      expect(full.seq).toBe(event.seq);
      expect(full.content.startsWith(event.content!.replace("…[truncated]", ""))).toBe(true);
    }
    await waitFor(async () => (await queuedTasks(env)) === 0, { message: "the task to be acked" });
  });

  it("turns a result that cutting text cannot make fit into a small RESULT_TOO_LARGE error result", async () => {
    env = await startEnv();
    const driver = new ScriptedDriver();
    await startWorker(env, driver);
    const prefix = `a-file-with-a-rather-long-name-${"x".repeat(40)}-`;
    await publishTask(env, {
      taskID: "many-files",
      prompt: script({ writeFiles: { count: 15_000, prefix } }, { text: "wrote them" }),
    });
    const result = await waitResult(env, "many-files", 60_000);
    expect(result).toMatchObject({
      status: "error",
      errorCode: "RESULT_TOO_LARGE",
      retryable: false,
      truncated: true,
      fullResult: { key: "artifacts/many-files/result.json" },
    });
    expect(result.error).toMatch(
      /^the result of task many-files \(completed\) is \d+ bytes, more than a message may hold \(\d+\); the whole result is in coding-artifacts at artifacts\/many-files\/result.json$/,
    );
    const whole = TaskResult.parse(JSON.parse(await storedObject("artifacts/many-files/result.json")));
    expect(whole).toMatchObject({ status: "completed", result: "wrote them" });
    expect(whole.changes?.files).toHaveLength(15_000);
    expect(driver.calls).toHaveLength(1);
    await waitFor(async () => (await queuedTasks(env)) === 0, { message: "the task to be acked" });
  }, 90_000);
});

describe("results the worker may not publish", () => {
  it("ends the task with a dead letter instead of retrying or running it again", async () => {
    // Unauthenticated clients (the test's) may do anything; the worker's user may not publish results.
    env = await startEnv(undefined, {
      config: `
        authorization {
          users: [
            { user: admin, password: admin }
            { user: worker, password: worker, permissions: { publish: { deny: ["station.coding.result.>"] } } }
          ]
        }
        no_auth_user: admin
      `,
    });
    const driver = new ScriptedDriver();
    await startWorker(env, driver, { user: "worker", pass: "worker" });
    await publishTask(env, { taskID: "muted", prompt: script({ text: "done" }) });
    const deadLetters = new DeadLetters(env.nc, env.names);
    const letter = await waitFor(async () => (await deadLetters.list()).find((l) => l.taskID === "muted"), {
      message: "the dead letter of muted",
    });
    expect(letter.reason).toBe(
      "the result could not be published: publish to station.coding.result.muted: not allowed for this NATS user",
    );
    await waitFor(async () => (await queuedTasks(env)) === 0, { message: "the task to be removed" });
    expect(driver.calls).toHaveLength(1);
    expect((await consumerInfo(env)).num_redelivered).toBe(0);
    expect(await env.lookups.result("muted")).toBeUndefined();
  });
});
