import { jetstream } from "@nats-io/jetstream";
import { Kvm } from "@nats-io/kv";
import { headers } from "@nats-io/transport-node";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { DeadLetters, TaskLease } from "@station-coding/protocol";
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

describe("consumption", () => {
  it("runs a minimal task and publishes live events and one result", async () => {
    await startWorker(env);
    await publishTask(env, {
      taskID: "t1",
      prompt: script({ text: "hello " }, { tool: { name: "bash" } }, { text: "world" }),
    });
    const result = await waitResult(env, "t1");
    expect(result.status).toBe("completed");
    expect(result.result).toBe("hello world");
    expect(result.session).toMatchObject({ name: "t1", messageCount: 1 });
    expect(result.metrics.toolCalls).toBe(1);
    expect(result.metrics.promptTokens).toBe(10);
    expect(result.metrics.completionTokens).toBe(5);
    const events = await eventsOf(env, "t1");
    expect(events.map((e) => e.seq)).toEqual(events.map((_, i) => i + 1));
    expect(events.map((e) => e.type)).toEqual([
      "task_started",
      "workspace_created",
      "session_created",
      "prompt_sent",
      "text",
      "tool_start",
      "tool_end",
      "text",
    ]);
    expect(result.metrics.streamEvents).toBe(events.length);
    await waitFor(async () => (await queuedTasks(env)) === 0, { message: "task acked" });
  });

  it("keeps a task published while no worker is connected and runs it when one starts", async () => {
    await publishTask(env, { taskID: "early", prompt: script({ text: "late but done" }) });
    expect(await queuedTasks(env)).toBe(1);
    await startWorker(env);
    expect((await waitResult(env, "early")).result).toBe("late but done");
  });

  it("accepts a plain core-NATS publish, as Station's Go dispatcher sends it", async () => {
    await startWorker(env);
    env.nc.publish(
      "station.coding.task",
      JSON.stringify({
        taskID: "go-1",
        session: { name: "go-s", continue: true },
        workspace: { name: "go-s" },
        prompt: script({ text: "from go" }),
        callback: {
          streamSubject: "station.coding.stream.go-1",
          resultSubject: "station.coding.result.go-1",
        },
      }),
    );
    expect((await waitResult(env, "go-1")).status).toBe("completed");
  });

  it("asks for one task per free slot: concurrency 2 never holds more than 2 of 6 queued tasks", async () => {
    const driver = new ScriptedDriver();
    for (let i = 0; i < 6; i += 1)
      await publishTask(env, { taskID: `c${i}`, prompt: script({ sleep: 400 }) });
    await startWorker(env, driver, { concurrency: 2 });
    let maxAckPending = 0;
    await waitFor(
      async () => {
        const info = await consumerInfo(env);
        maxAckPending = Math.max(maxAckPending, info.num_ack_pending);
        return (await Promise.all([0, 1, 2, 3, 4, 5].map((i) => env.lookups.result(`c${i}`)))).every(Boolean);
      },
      { timeout: 20_000, interval: 50, message: "all six results" },
    );
    expect(maxAckPending).toBeLessThanOrEqual(2);
    expect(maxAckPending).toBeGreaterThan(0);
    expect(driver.calls).toHaveLength(6);
  });

  it("caps in-flight work across workers with the consumer's max_ack_pending", async () => {
    await startWorker(env, new ScriptedDriver(), { concurrency: 4, maxAckPending: 3 });
    expect((await consumerInfo(env)).config.max_ack_pending).toBe(3);
  });

  it("runs each task exactly once with two workers competing", async () => {
    const driver = new ScriptedDriver();
    await startWorker(env, driver, { concurrency: 3 });
    await startWorker(env, driver, { concurrency: 3 });
    const ids = Array.from({ length: 20 }, (_, i) => `m${i}`);
    await Promise.all(
      ids.map((id) => publishTask(env, { taskID: id, prompt: script({ sleep: 20 }, { text: id }) })),
    );
    for (const id of ids) expect((await waitResult(env, id)).result).toBe(id);
    expect(driver.calls.map((c) => c.taskID).sort()).toEqual([...ids].sort());
    for (const id of ids) expect(await resultMessages(env, id)).toBe(1);
  });
});

describe("leases", () => {
  it("never redelivers a task that runs far longer than ack_wait while its worker lives", async () => {
    const driver = new ScriptedDriver();
    await startWorker(env, driver, { ackWait: 1_000 });
    await publishTask(env, { taskID: "long", prompt: script({ sleep: 4_000 }, { text: "done" }) });
    const result = await waitResult(env, "long");
    expect(result.status).toBe("completed");
    expect(driver.calls).toHaveLength(1);
    expect(result.metrics.attempts).toBe(1);
    expect((await consumerInfo(env)).num_redelivered).toBe(0);
  });

  it("a worker that lost its lease publishes no result, and the new owner's run is the only result", async () => {
    const driver = new ScriptedDriver();
    await startWorker(env, driver, { ackWait: 1_500 });
    await publishTask(env, { taskID: "stolen", prompt: script({ sleep: 2_500 }, { text: "finished" }) });
    await waitFor(() => driver.calls.length === 1, { message: "first run started" });
    const leases = await new Kvm(env.nc).open(env.names.kv.leases);
    const entry = await leases.get("task.stolen");
    const lease = TaskLease.parse(entry!.json());
    // Another worker takes the lease over (as if this one had been paused past its lease)...
    await leases.update(
      "task.stolen",
      JSON.stringify({ ...lease, workerID: "intruder", expiresAt: Date.now() + 1_000 }),
      entry!.revision,
    );
    // ...so the first run is abandoned without a result, and the task is redelivered and finished once.
    const result = await waitResult(env, "stolen", 30_000);
    expect(result.status).toBe("completed");
    expect(driver.calls.length).toBe(2);
    expect(await resultMessages(env, "stolen")).toBe(1);
    expect(env.logs.join("")).toContain("lost the lease");
  });

  it("a task whose worker died after publishing its result is marked done, not run again", async () => {
    // The dead worker's state: result stored, lease still "publishing" (it died before "done").
    const leases = await publishingLease("died-after", "dead-1", Date.now() - 1);
    const stored = { ...(await resultOf("died-after", "dead-1")), result: "from the dead worker" };
    await jetstream(env.nc).publish(env.names.resultSubject("died-after"), JSON.stringify(stored), {
      msgID: "died-after:result",
    });
    const driver = new ScriptedDriver();
    await startWorker(env, driver);
    await publishTask(env, { taskID: "died-after", prompt: script({ text: "second run" }) });
    await waitFor(
      async () => (await queuedTasks(env)) === 0 && (await consumerInfo(env)).num_ack_pending === 0,
      { message: "the delivery to be acked" },
    );
    expect(driver.calls).toHaveLength(0);
    expect(TaskLease.parse((await leases.get("task.died-after"))!.json()).state).toBe("done");
    expect((await waitResult(env, "died-after")).result).toBe("from the dead worker");
    expect(await resultMessages(env, "died-after")).toBe(1);
  });

  it("a task whose worker died while publishing, before its result was stored, runs again", async () => {
    // Still held for a moment (busy), then expired: the next delivery runs it as attempt 2.
    const leases = await publishingLease("died-during", "dead-2", Date.now() + 1_000);
    const driver = new ScriptedDriver();
    await startWorker(env, driver);
    await publishTask(env, { taskID: "died-during", prompt: script({ text: "second run" }) });
    const result = await waitResult(env, "died-during");
    expect(result).toMatchObject({ status: "completed", result: "second run" });
    expect(result.metrics.attempts).toBe(2);
    expect(driver.calls).toHaveLength(1);
    expect(TaskLease.parse((await leases.get("task.died-during"))!.json()).state).toBe("done");
  });
});

/** The lease a worker leaves when it dies while publishing its result (first attempt); the bucket. */
async function publishingLease(taskID: string, workerID: string, expiresAt: number) {
  const leases = await new Kvm(env.nc).open(env.names.kv.leases);
  const lease: TaskLease = { taskID, state: "publishing", attempts: 1, workerID, expiresAt };
  await leases.put(`task.${taskID}`, JSON.stringify(lease));
  return leases;
}

/** A completed result of `taskID` as worker `workerID` would publish it (taken from a real run). */
async function resultOf(taskID: string, workerID: string): Promise<Record<string, unknown>> {
  const worker = await startWorker(env);
  await publishTask(env, { taskID: `${taskID}-template`, prompt: script({ text: "x" }) });
  const template = await waitResult(env, `${taskID}-template`);
  await worker.stop();
  return { ...template, taskID, workerID };
}

describe("sessions", () => {
  it("never runs two tasks of one session at once, across two workers", async () => {
    const driver = new ScriptedDriver();
    await startWorker(env, driver, { concurrency: 3 });
    await startWorker(env, driver, { concurrency: 3 });
    const ids = ["s1", "s2", "s3", "s4"];
    for (const id of ids) {
      await publishTask(env, { taskID: id, session: { name: "shared" }, prompt: script({ sleep: 150 }) });
    }
    await publishTask(env, { taskID: "other", session: { name: "other" }, prompt: script({ sleep: 150 }) });
    for (const id of [...ids, "other"]) expect((await waitResult(env, id)).status).toBe("completed");
    expect(driver.overlaps).toBe(0);
    const shared = driver.calls
      .filter((c) => c.session === "shared")
      .sort((a, b) => a.startedAt - b.startedAt);
    for (let i = 1; i < shared.length; i += 1)
      expect(shared[i]!.startedAt).toBeGreaterThanOrEqual(shared[i - 1]!.endedAt!);
    const last = await waitResult(env, "s4");
    expect(last.session.opencodeID).toBe((await waitResult(env, "s1")).session.opencodeID);
  });

  it("counts messages per session with compare-and-set: 4 tasks give messageCount 4", async () => {
    await startWorker(env, new ScriptedDriver(), { concurrency: 4 });
    for (const id of ["a", "b", "c", "d"]) {
      await publishTask(env, {
        taskID: `mc-${id}`,
        session: { name: "counted" },
        prompt: script({ text: id }),
      });
    }
    for (const id of ["a", "b", "c", "d"]) await waitResult(env, `mc-${id}`);
    const { SessionStore } = await import("@station-coding/protocol");
    const sessions = await SessionStore.open(env.nc, env.names);
    expect((await sessions.get("counted"))?.value.messageCount).toBe(4);
  });

  it("continue: false starts a new agent session", async () => {
    await startWorker(env);
    await publishTask(env, { taskID: "n1", session: { name: "fresh" }, prompt: "one" });
    const first = await waitResult(env, "n1");
    await publishTask(env, { taskID: "n2", session: { name: "fresh", continue: false }, prompt: "two" });
    const second = await waitResult(env, "n2");
    expect(second.session.opencodeID).not.toBe(first.session.opencodeID);
    await publishTask(env, { taskID: "n3", session: { name: "fresh" }, prompt: "three" });
    expect((await waitResult(env, "n3")).session.opencodeID).toBe(second.session.opencodeID);
  });
});

describe("events", () => {
  it("stamps seq from 1 and Nats-Msg-Id <taskID>:<seq>, and the result <taskID>:result", async () => {
    await startWorker(env);
    const seen: { subject: string; msgID: string | undefined; seq?: number }[] = [];
    const sub = env.nc.subscribe("station.coding.>", {
      callback: (_err, msg) => {
        const body = msg.json<{ seq?: number }>();
        seen.push({
          subject: msg.subject,
          msgID: msg.headers?.get("Nats-Msg-Id"),
          ...(body.seq ? { seq: body.seq } : {}),
        });
      },
    });
    await publishTask(env, { taskID: "ids", prompt: script({ text: "x" }, { tool: { name: "read" } }) });
    await waitResult(env, "ids");
    await waitFor(() => seen.some((s) => s.subject === "station.coding.result.ids"));
    sub.unsubscribe();
    const events = seen.filter((s) => s.subject === "station.coding.stream.ids");
    expect(events.map((e) => e.msgID)).toEqual(events.map((e) => `ids:${e.seq}`));
    expect(events.map((e) => e.seq)).toEqual(events.map((_, i) => i + 1));
    expect(seen.find((s) => s.subject === "station.coding.result.ids")?.msgID).toBe("ids:result");
    // The result came after every event.
    expect(seen.findIndex((s) => s.subject.startsWith("station.coding.result"))).toBe(seen.length - 1);
  });

  it("coalesces chatty text into few events without losing a character", async () => {
    await startWorker(env);
    await publishTask(env, { taskID: "chatty", prompt: script({ deltas: { count: 2_000, text: "ab" } }) });
    const result = await waitResult(env, "chatty");
    const text = (await eventsOf(env, "chatty")).filter((e) => e.type === "text");
    expect(text.map((e) => e.content).join("")).toBe("ab".repeat(2_000));
    expect(text.length).toBeLessThan(20);
    expect(result.result).toHaveLength(4_000);
  });

  it("continues seq after a crashed attempt instead of starting over", async () => {
    const driver = new ScriptedDriver();
    await startWorker(env, driver, { maxAttempts: 3 });
    await publishTask(env, {
      taskID: "again",
      prompt: script(
        { text: "try" },
        { fail: { message: "flaky", retryable: true }, times: 1 },
        { text: " ok" },
      ),
    });
    const result = await waitResult(env, "again");
    expect(result.status).toBe("completed");
    expect(result.metrics.attempts).toBe(2);
    const events = await eventsOf(env, "again");
    expect(events.map((e) => e.seq)).toEqual(events.map((_, i) => i + 1));
    expect(events.filter((e) => e.type === "task_started").map((e) => e.attempt)).toEqual([1, 2]);
  });
});

describe("bad input", () => {
  it("terminates invalid JSON without crashing, and keeps serving", async () => {
    await startWorker(env);
    await publishTask(env, "{this is not json");
    await publishTask(env, { taskID: "after-bad", prompt: "still works" });
    expect((await waitResult(env, "after-bad")).status).toBe("completed");
    await waitFor(async () => (await queuedTasks(env)) === 0, { message: "bad message removed" });
    expect(env.logs.join("")).toContain("invalid task rejected");
  });

  it("answers an invalid task whose taskID is recoverable with an error result", async () => {
    await startWorker(env);
    await publishTask(env, { taskID: "bad-1", prompt: "x", session: { name: "a.b" } });
    const result = await waitResult(env, "bad-1");
    expect(result.status).toBe("error");
    expect(result.errorCode).toBe("INVALID_TASK");
    expect(result.retryable).toBe(false);
    expect(result.error).toBe('session.name "a.b": must not contain "."');
    await waitFor(async () => (await queuedTasks(env)) === 0, { message: "not redelivered" });
  });
  it("is not fooled by a forged result published before the task runs", async () => {
    const forged = {
      taskID: "forged",
      status: "completed",
      result: "forged",
      session: { name: "forged", opencodeID: "", messageCount: 0 },
      workspace: { name: "forged", path: "" },
      metrics: { duration: 0, toolCalls: 0, streamEvents: 0 },
    };
    const h = headers();
    h.set("Nats-Msg-Id", "forged:result");
    await jetstream(env.nc).publish(env.names.resultSubject("forged"), JSON.stringify(forged), {
      headers: h,
    });
    const worker = await startWorker(env);
    await publishTask(env, { taskID: "forged", prompt: script({ text: "the real one" }) });
    const real = await waitFor(async () => {
      const r = await env.lookups.result("forged");
      return r?.workerID === worker.workerID ? r : undefined;
    });
    expect(real.result).toBe("the real one");
  });
});

describe("cancel and timeout", () => {
  // How fast a cancel lands is a benchmark's business (npm run bench, scenario 8): this checks what happens.
  it("cancels a running task through the driver's AbortSignal", async () => {
    const driver = new ScriptedDriver();
    await startWorker(env, driver);
    await publishTask(env, { taskID: "cx", prompt: script({ sleep: 30_000 }) });
    await waitFor(() => driver.calls.length === 1, { message: "task running" });
    await jetstream(env.nc).publish(
      env.names.cancelSubject("cx"),
      JSON.stringify({ taskID: "cx", reason: "user" }),
    );
    const result = await waitResult(env, "cx");
    expect(result.status).toBe("cancelled");
    expect(result.errorCode).toBe("CANCELLED");
    expect(result.error).toBe("task cancelled: user");
    // The driver saw the signal and returned from its 30 s sleep before the result was published:
    // the runtime did not have to give up on it after the abort grace.
    expect(driver.calls[0]?.endedAt).toBeDefined();
  });

  it("a cancel that arrives before the task starts finishes it as cancelled without running", async () => {
    const driver = new ScriptedDriver();
    await jetstream(env.nc).publish(
      env.names.cancelSubject("early-cx"),
      JSON.stringify({ taskID: "early-cx" }),
    );
    await publishTask(env, { taskID: "early-cx", prompt: script({ text: "must not run" }) });
    await startWorker(env, driver);
    expect((await waitResult(env, "early-cx")).status).toBe("cancelled");
    expect(driver.calls).toHaveLength(0);
    // Its session lock (taken while the stored cancel was looked up) is not left behind.
    const leases = await new Kvm(env.nc).open(env.names.kv.leases);
    expect((await leases.get("session.early-cx"))?.operation ?? "none").not.toBe("PUT");
  });

  it("aborts a task past its timeout with status timeout", async () => {
    await startWorker(env);
    await publishTask(env, { taskID: "slow", timeout: 300, prompt: script({ sleep: 30_000 }) });
    const result = await waitResult(env, "slow");
    expect(result.status).toBe("timeout");
    expect(result.errorCode).toBe("TIMEOUT");
  });

  it("applies the worker's default timeout, and does not hang on a driver that ignores the signal", async () => {
    await startWorker(env, new ScriptedDriver(), { taskTimeout: 200, abortGrace: 200 });
    await publishTask(env, { taskID: "stubborn", prompt: script({ stubborn: 20_000 }) });
    const result = await waitResult(env, "stubborn", 5_000);
    expect(result.status).toBe("timeout");
  });
});

describe("retries and dead letters", () => {
  it("retries a retryable failure with a delay and completes", async () => {
    const driver = new ScriptedDriver();
    await startWorker(env, driver, { maxAttempts: 3 });
    await publishTask(env, {
      taskID: "flaky",
      prompt: script({ fail: { message: "503 from provider", retryable: true }, times: 2 }, { text: "ok" }),
    });
    const result = await waitResult(env, "flaky");
    expect(result.status).toBe("completed");
    expect(result.metrics.attempts).toBe(3);
    expect(driver.calls).toHaveLength(3);
  });

  it("gives up after max attempts with an error result and a dead letter that can be replayed", async () => {
    const driver = new ScriptedDriver();
    await startWorker(env, driver, { maxAttempts: 2 });
    await publishTask(env, {
      taskID: "doomed",
      prompt: script({ fail: { message: "always down", retryable: true }, times: 2 }, { text: "recovered" }),
    });
    const result = await waitResult(env, "doomed");
    expect(result.status).toBe("error");
    expect(result.error).toBe("always down");
    expect(driver.calls).toHaveLength(2);
    const dlq = new DeadLetters(env.nc, env.names);
    const letters = await dlq.list();
    expect(letters.map((l) => l.taskID)).toEqual(["doomed"]);
    expect(letters[0]!.reason).toContain("always down");
    expect(letters[0]!.attempts).toBe(2);
    await waitFor(async () => (await queuedTasks(env)) === 0, { message: "task removed from the queue" });

    await dlq.replay("doomed");
    const replayed = await waitFor(async () => {
      const r = await env.lookups.result("doomed");
      return r?.status === "completed" ? r : undefined;
    });
    expect(replayed.result).toBe("recovered");
    expect(await dlq.list()).toEqual([]);
  });

  it("fails a non-retryable error at once without retrying", async () => {
    const driver = new ScriptedDriver();
    await startWorker(env, driver);
    await publishTask(env, {
      taskID: "fatal",
      prompt: script({ fail: { message: "bad request", retryable: false } }),
    });
    const result = await waitResult(env, "fatal");
    expect(result.status).toBe("error");
    expect(result.retryable).toBe(false);
    expect(driver.calls).toHaveLength(1);
    await waitFor(async () => (await queuedTasks(env)) === 0, { message: "terminated" });
  });
});

describe("lifecycle", () => {
  it("lets an in-flight task finish on stop, then reports stopped", async () => {
    const worker = await startWorker(env);
    await publishTask(env, { taskID: "drain", prompt: script({ sleep: 500 }, { text: "finished" }) });
    await waitFor(() => worker.runningTasks.includes("drain"), { message: "running" });
    await worker.stop();
    expect(worker.state).toBe("stopped");
    expect((await env.lookups.result("drain"))?.status).toBe("completed");
  });

  it("hands a task back when the grace period runs out, and another worker completes it", async () => {
    const first = new ScriptedDriver();
    const worker = await startWorker(env, first, { shutdownGrace: 200 });
    await publishTask(env, { taskID: "handback", prompt: script({ sleep: 1_500 }, { text: "second time" }) });
    await waitFor(() => first.calls.length === 1, { message: "running" });
    await worker.stop();
    expect(await env.lookups.result("handback")).toBeUndefined();
    const second = new ScriptedDriver();
    await startWorker(env, second);
    const result = await waitResult(env, "handback");
    expect(result.result).toBe("second time");
    expect(result.metrics.attempts).toBe(1);
    expect(second.calls).toHaveLength(1);
  });

  it("announces itself with its load in the workers bucket", async () => {
    const worker = await startWorker(env, new ScriptedDriver(), { heartbeatInterval: 100 });
    await publishTask(env, { taskID: "busy", prompt: script({ sleep: 1_000 }) });
    const kv = await new Kvm(env.nc).open(env.names.kv.workers);
    const busy = await waitFor(async () => {
      const p = (await kv.get(worker.workerID))?.json<{ inFlight: number; tasks: string[]; state: string }>();
      return p && p.inFlight === 1 ? p : undefined;
    });
    expect(busy.tasks).toEqual(["busy"]);
    expect(busy.state).toBe("running");
    await waitResult(env, "busy");
    await worker.stop();
    expect((await kv.get(worker.workerID))?.json<{ state: string; completed: number }>()).toMatchObject({
      state: "stopped",
      completed: 1,
    });
  });
});

describe("reconnect", () => {
  it("survives a nats-server restart mid-task and delivers the result", async () => {
    const driver = new ScriptedDriver();
    await startWorker(env, driver, { ackWait: 3_000 });
    await publishTask(env, { taskID: "restart", prompt: script({ sleep: 1_500 }, { text: "made it" }) });
    await waitFor(() => driver.calls.length === 1, { message: "running" });
    await env.server.restart();
    const result = await waitResult(env, "restart", 30_000);
    expect(result.result).toBe("made it");
    expect(await resultMessages(env, "restart")).toBe(1);
  });
});

describe("telemetry headers", () => {
  it("accepts tasks that carry a traceparent header", async () => {
    await startWorker(env);
    const h = headers();
    h.set("traceparent", "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01");
    await jetstream(env.nc).publish(
      env.names.taskSubject,
      JSON.stringify({ taskID: "traced", prompt: "x" }),
      { headers: h },
    );
    expect((await waitResult(env, "traced")).status).toBe("completed");
  });
});
