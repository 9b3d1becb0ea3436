import { Kvm } from "@nats-io/kv";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { ScriptedDriver, script, startWorker } from "@station-coding/testkit/worker";
import type { DispatcherEnv } from "./support/dispatcher-env.js";
import { startDispatcherEnv, until } from "./support/dispatcher-env.js";

let env: DispatcherEnv;
beforeEach(async () => {
  env = await startDispatcherEnv();
});
afterEach(async () => {
  await env.close();
});

describe("status", () => {
  it("shows an empty queue and no workers before anything runs", async () => {
    const dispatcher = await env.connect();
    expect(await dispatcher.status()).toEqual({
      org: undefined,
      tasks: { stream: "CODING_TASKS", messages: 0, consumer: undefined },
      workers: [],
      deadLetters: 0,
    });
  });

  it("shows a live worker with its running task and a queued task, then the worker as dead", async () => {
    const worker = await startWorker(env, new ScriptedDriver(), { concurrency: 1, shutdownGrace: 500 });
    const dispatcher = await env.connect();
    const running = await dispatcher.submit({ taskID: "running", prompt: script({ sleep: 20_000 }) });
    await dispatcher.submit({ taskID: "waiting", prompt: script({ text: "later" }) });
    const status = await until(async () => {
      const s = await dispatcher.status();
      return s.workers[0]?.tasks.includes("running") && s.tasks.consumer?.pending === 1 ? s : undefined;
    }, "a busy worker and a queued task");
    expect(status.tasks.messages).toBe(2);
    expect(status.tasks.consumer).toMatchObject({
      name: "coding-workers",
      pending: 1,
      ackPending: 1,
      redelivered: 0,
    });
    expect(status.workers).toHaveLength(1);
    expect(status.workers[0]).toMatchObject({
      workerID: worker.workerID,
      state: "running",
      liveness: "alive",
      concurrency: 1,
      inFlight: 1,
      tasks: ["running"],
    });
    expect(status.deadLetters).toBe(0);

    await running.cancel();
    await worker.stop();
    const stopped = await until(async () => {
      const s = await dispatcher.status();
      return s.workers[0]?.liveness === "dead" ? s : undefined;
    }, "the stopped worker to be reported dead");
    expect(stopped.workers[0]).toMatchObject({
      workerID: worker.workerID,
      state: "stopped",
      liveness: "dead",
    });
    expect(stopped.workers[0]!.heartbeatAge).toBeGreaterThan(3 * 500);
  });

  it("answers every time while a worker's presence record is rewritten every few milliseconds", async () => {
    // KV.keys() (an ordered push consumer) never returned when the key changed under it: a CLI
    // `status` hung in CI while a worker heartbeated. Presence is listed from the stream's subjects.
    const worker = await startWorker(env, new ScriptedDriver());
    const dispatcher = await env.connect();
    const presence = await new Kvm(env.nc).open(env.names.kv.workers);
    const record = await until(() => presence.get(worker.workerID), "the worker's presence record");
    let writing = true;
    const writer = (async () => {
      while (writing) {
        await presence.put(worker.workerID, record.string());
        await new Promise((resolve) => setTimeout(resolve, 2));
      }
    })();
    try {
      for (let i = 0; i < 100; i += 1) {
        const status = await Promise.race([
          dispatcher.status(),
          new Promise<never>((_, reject) =>
            setTimeout(
              () => reject(new Error(`status() call ${i} did not answer within 10s`)),
              10_000,
            ).unref(),
          ),
        ]);
        expect(status.workers.map((w) => w.workerID)).toEqual([worker.workerID]);
      }
    } finally {
      writing = false;
      await writer;
    }
  });
});

describe("dead letters", () => {
  it("lists a dead task, counts it in the status and replays it to completion", async () => {
    const driver = new ScriptedDriver();
    await startWorker(env, driver, { maxAttempts: 1 });
    const dispatcher = await env.connect();
    const handle = await dispatcher.submit({
      taskID: "flaky",
      prompt: script(
        { fail: { message: "provider overloaded", retryable: true }, times: 1 },
        { text: "fine now" },
      ),
    });
    const failed = await handle.result();
    expect(failed.status).toBe("error");
    const letters = await until(async () => {
      const list = await dispatcher.deadLetters.list();
      return list.length > 0 ? list : undefined;
    }, "the dead letter");
    expect(letters).toHaveLength(1);
    expect(letters[0]).toMatchObject({ taskID: "flaky", attempts: 1, subject: "station.coding.task" });
    expect((await dispatcher.status()).deadLetters).toBe(1);

    await dispatcher.deadLetters.replay("flaky");
    const replayed = await until(async () => {
      const result = await dispatcher
        .task("flaky")
        .result({ timeout: 100 })
        .catch(() => undefined);
      return result?.status === "completed" ? result : undefined;
    }, "the replay's result");
    expect(replayed.result).toBe("fine now");
    expect(await dispatcher.deadLetters.list()).toEqual([]);
    expect(driver.calls).toHaveLength(2);
    await expect(dispatcher.deadLetters.replay("nothing-here")).rejects.toThrow(
      /dead letter for task nothing-here not found/,
    );
  });
});
