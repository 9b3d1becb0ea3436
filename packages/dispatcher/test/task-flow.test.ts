import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { ErrorCodes, StationError, ValidationError } from "@station-coding/protocol";
import type { StreamEvent } from "@station-coding/protocol";
import { waitFor } from "@station-coding/testkit";
import { WaitTimeoutError } from "@station-coding/dispatcher";
import {
  ScriptedDriver,
  eventsOf,
  publishTask,
  queuedTasks,
  resultMessages,
  script,
  startWorker,
} from "@station-coding/testkit/worker";
import type { DispatcherEnv } from "./support/dispatcher-env.js";
import { collect, startDispatcherEnv } from "./support/dispatcher-env.js";

let env: DispatcherEnv;
beforeEach(async () => {
  env = await startDispatcherEnv();
});
afterEach(async () => {
  await env.close();
});

const seqs = (events: StreamEvent[]) => events.map((e) => e.seq);
const oneTo = (n: number) => Array.from({ length: n }, (_, i) => i + 1);

describe("submit and follow", () => {
  it("follows a submitted task's events in seq order and then its result", async () => {
    await startWorker(env);
    const dispatcher = await env.connect();
    const handle = await dispatcher.submit({
      taskID: "t1",
      prompt: script({ text: "hello " }, { tool: { name: "bash" } }, { text: "world" }),
    });
    expect(handle.receipt).toMatchObject({ duplicate: false, seq: 1 });
    const events = await collect(handle.events());
    const result = await handle.result();
    expect(result.status).toBe("completed");
    expect(result.result).toBe("hello world");
    expect(seqs(events)).toEqual(oneTo(result.metrics.streamEvents));
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
  });

  it("publishes the resolved task with its message id so that any worker can run it", async () => {
    const dispatcher = await env.connect();
    const seen: { data: Record<string, unknown>; msgID: string | undefined }[] = [];
    const sub = env.nc.subscribe(env.names.taskSubject, {
      callback: (_err, msg) => {
        seen.push({ data: msg.json(), msgID: msg.headers?.get("Nats-Msg-Id") });
      },
    });
    await env.nc.flush();
    await dispatcher.submit({ taskID: "shape", prompt: "do it", session: { name: "s1" } });
    await waitFor(() => seen.length === 1, { message: "the task message" });
    sub.unsubscribe();
    expect(seen[0]!.msgID).toBe("shape");
    expect(seen[0]!.data).toMatchObject({
      taskID: "shape",
      op: "code",
      prompt: "do it",
      session: { name: "s1", continue: true },
      workspace: { name: "s1", scope: "agent" },
      callback: {
        streamSubject: "station.coding.stream.shape",
        resultSubject: "station.coding.result.shape",
      },
      agentID: "s1",
    });
  });

  it("replays every event from seq 1 for a handle created after the task finished", async () => {
    await startWorker(env);
    const dispatcher = await env.connect();
    const first = await dispatcher.submit({
      taskID: "done",
      prompt: script({ text: "a" }, { tool: { name: "x" } }),
    });
    const result = await first.result();
    const again = dispatcher.task("done");
    const events = await collect(again.events());
    expect(seqs(events)).toEqual(oneTo(result.metrics.streamEvents));
    expect(events).toEqual(await eventsOf(env, "done"));
    expect(await again.result()).toEqual(result);
  });

  it("resumes after a given seq without repeating events", async () => {
    await startWorker(env);
    const dispatcher = await env.connect();
    const handle = await dispatcher.submit({
      taskID: "resume",
      prompt: script({ text: "a" }, { tool: { name: "x" } }),
    });
    const result = await handle.result();
    const rest = await collect(handle.events({ afterSeq: 3 }));
    expect(seqs(rest)).toEqual(oneTo(result.metrics.streamEvents).slice(3));
  });

  it("re-attaches from a new connection while the task runs and gets the remaining events and the result", async () => {
    await startWorker(env);
    const first = await env.connect();
    const handle = await first.submit({
      taskID: "reattach",
      prompt: script({ text: "before" }, { sleep: 1500 }, { tool: { name: "bash" } }, { text: "after" }),
    });
    const early: StreamEvent[] = [];
    for await (const event of handle.events()) {
      early.push(event);
      if (event.type === "prompt_sent") break;
    }
    await first.close();
    await expect(handle.result()).rejects.toThrow(/dispatcher was closed/);

    const second = await env.connect();
    const attached = second.task("reattach");
    const last = early.at(-1)!.seq;
    const rest = await collect(attached.events({ afterSeq: last }));
    const result = await attached.result();
    expect(result.status).toBe("completed");
    expect(result.result).toBe("beforeafter");
    expect(rest.length).toBeGreaterThan(0);
    expect(seqs([...early, ...rest])).toEqual(oneTo(result.metrics.streamEvents));
    const all = await collect(second.task("reattach").events());
    expect(seqs(all)).toEqual(oneTo(result.metrics.streamEvents));
  });

  it("runs a task once when it is submitted twice", async () => {
    const driver = new ScriptedDriver();
    await startWorker(env, driver);
    const dispatcher = await env.connect();
    const task = { taskID: "twice", prompt: script({ text: "once" }) };
    const first = await dispatcher.submit(task);
    const second = await dispatcher.submit(task);
    expect(first.receipt?.duplicate).toBe(false);
    expect(second.receipt?.duplicate).toBe(true);
    expect((await second.result()).result).toBe("once");
    // After the stream's duplicate window a resubmit reaches a worker, which drops it: it has a result.
    await publishTask(env, task, "twice-after-the-dedupe-window");
    await waitFor(async () => (await queuedTasks(env)) === 0, { message: "the repeat to be dropped" });
    expect(driver.calls).toHaveLength(1);
    expect(await resultMessages(env, "twice")).toBe(1);
  });

  it("rejects an invalid task with a ValidationError naming the field", async () => {
    const dispatcher = await env.connect();
    const err = await dispatcher
      .submit({ taskID: "bad", prompt: "x", session: { name: "a.b" } })
      .catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ValidationError);
    expect((err as ValidationError).field).toBe("session.name");
    expect((err as Error).message).toMatch(/session\.name "a\.b": must not contain "\."/);
    await expect(dispatcher.submit({ taskID: "../x", prompt: "x" })).rejects.toThrow(/taskID/);
    await expect(dispatcher.submit({ taskID: "empty" })).rejects.toThrow(/prompt/);
    expect(await queuedTasks(env)).toBe(0);
  });
});

describe("cancel", () => {
  it("cancels a running task: its result is cancelled within a second", async () => {
    await startWorker(env, new ScriptedDriver(), { shutdownGrace: 500 });
    const dispatcher = await env.connect();
    const handle = await dispatcher.submit({
      taskID: "long",
      prompt: script({ text: "x" }, { sleep: 30_000 }),
    });
    await waitFor(async () => (await handle.state()).phase === "running", { message: "the task to run" });
    const asked = Date.now();
    await handle.cancel("changed my mind");
    const result = await handle.result({ timeout: "1s" });
    expect(Date.now() - asked).toBeLessThan(1_000);
    expect(result.status).toBe("cancelled");
    expect(result.error).toMatch(/changed my mind/);
  });

  it("cancels a task that has not started: the request is stored for the worker", async () => {
    const dispatcher = await env.connect();
    const handle = await dispatcher.submit({ taskID: "early", prompt: script({ text: "never" }) });
    await dispatcher.cancel("early", "not needed");
    const driver = new ScriptedDriver();
    await startWorker(env, driver);
    const result = await handle.result({ timeout: "10s" });
    expect(result.status).toBe("cancelled");
    expect(driver.calls).toHaveLength(0);
  });
});

describe("wait limit", () => {
  it("says the task is still queued when no worker runs", async () => {
    const dispatcher = await env.connect();
    const handle = await dispatcher.submit({ taskID: "queued", prompt: "x" });
    const err = await handle.result({ timeout: 200 }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(WaitTimeoutError);
    expect(err).toBeInstanceOf(StationError);
    const timeout = err as WaitTimeoutError;
    expect(timeout.code).toBe(ErrorCodes.WaitTimeout);
    expect(timeout.phase).toBe("queued");
    expect(timeout.message).toMatch(/task queued: no result after waiting \d+ms; still queued/);
    expect(timeout.message).toMatch(/task message 1 is still pending in stream CODING_TASKS/);
    expect(timeout.message).toMatch(/no live worker/);
  });

  it("says the task is running, and on which worker, when a worker has it", async () => {
    const worker = await startWorker(env, new ScriptedDriver(), { shutdownGrace: 500 });
    const dispatcher = await env.connect();
    const handle = await dispatcher.submit({ taskID: "busy", prompt: script({ sleep: 20_000 }) });
    await waitFor(async () => (await handle.state()).phase === "running", { message: "the task to run" });
    const err = (await handle.result({ timeout: "300ms" }).catch((e: unknown) => e)) as WaitTimeoutError;
    expect(err).toBeInstanceOf(WaitTimeoutError);
    expect(err.code).toBe("WAIT_TIMEOUT");
    expect(err.phase).toBe("running");
    expect(err.workerID).toBe(worker.workerID);
    expect(err.message).toContain(`still running on worker ${worker.workerID} (attempt 1`);
    await handle.cancel();
    expect((await handle.result()).status).toBe("cancelled");
  });
});

describe("lifecycle", () => {
  it("ends pending waits and event iterators when the dispatcher closes", async () => {
    const dispatcher = await env.connect();
    const handle = await dispatcher.submit({ taskID: "orphan", prompt: "x" });
    const waiting = handle.result();
    const following = collect(handle.events());
    await dispatcher.close();
    await expect(waiting).rejects.toThrow(/dispatcher was closed while waiting for task orphan/);
    await expect(following).rejects.toThrow(/dispatcher was closed/);
    await expect(dispatcher.submit({ taskID: "late", prompt: "x" })).rejects.toThrow(/closed/);
    expect(env.nc.isClosed()).toBe(false);
  });

  it("leaves a connection it was given open", async () => {
    const dispatcher = await env.connect({ connection: env.nc, ensureTopology: false });
    await dispatcher.close();
    expect(env.nc.isClosed()).toBe(false);
    const owned = await env.connect();
    const nc = owned.connection;
    await owned.close();
    expect(nc.isClosed()).toBe(true);
  });
});
