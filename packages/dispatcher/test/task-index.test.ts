// The task index end to end: a real nats-server, the dispatcher's submit, a worker with the
// scripted driver, and a raw NATS client that publishes a task without the dispatcher.
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { jetstreamManager } from "@nats-io/jetstream";
import { TaskIndex, TaskIndexView } from "@station-coding/protocol";
import type { TaskIndexRecord, TaskIndexStatus } from "@station-coding/protocol";
import { waitFor } from "@station-coding/testkit";
import { publishTask, script, startWorker, waitResult } from "@station-coding/testkit/worker";
import type { DispatcherEnv } from "./support/dispatcher-env.js";
import { startDispatcherEnv } from "./support/dispatcher-env.js";

let env: DispatcherEnv;
let view: TaskIndexView | undefined;
/** Every status each task passed through in the view, in order. */
const seen = new Map<string, TaskIndexStatus[]>();

function track(record: TaskIndexRecord): void {
  const list = seen.get(record.taskID) ?? [];
  if (list.at(-1) !== record.status) list.push(record.status);
  seen.set(record.taskID, list);
}

beforeEach(async () => {
  seen.clear();
  env = await startDispatcherEnv();
  view = await TaskIndexView.start(new TaskIndex(env.nc, env.names), { onChange: track });
});
afterEach(async () => {
  await view?.stop();
  await env.close();
});

describe("task index", () => {
  it("records a submitted task as queued, then running and completed with its worker and metrics", async () => {
    const dispatcher = await env.connect();
    const index = new TaskIndex(env.nc, env.names);
    const prompt = JSON.stringify({
      steps: [{ sleep: 300 }, { tool: { name: "bash" } }, { text: "done ".repeat(80) }],
      usage: { input: 100, output: 20 },
    });
    await dispatcher.submit({ taskID: "t1", prompt, session: { name: "feature" } });
    // submit() resolves once the queued record is stored: a caller may read it at once.
    const queued = (await index.get("t1"))?.value;
    expect(queued).toMatchObject({ taskID: "t1", status: "queued", session: "feature", op: "code" });
    expect(queued?.prompt?.length).toBe(200);
    expect(prompt.startsWith(queued!.prompt!.slice(0, -1))).toBe(true);

    const worker = await startWorker(env);
    await waitResult(env, "t1");
    await waitFor(() => view!.get("t1")?.status === "completed", { message: "t1 completed in the view" });
    expect(seen.get("t1")).toEqual(["queued", "running", "completed"]);
    const done = view!.get("t1")!;
    expect(done).toMatchObject({
      worker: worker.options.workerID,
      attempts: 1,
      session: "feature",
      submittedAt: queued!.submittedAt,
      prompt: queued!.prompt,
      metrics: { toolCalls: 1, tokens: 120, inputTokens: 100, outputTokens: 20 },
    });
    expect(Date.parse(done.startedAt!)).toBeGreaterThanOrEqual(Date.parse(done.submittedAt!));
    expect(Date.parse(done.finishedAt!)).toBeGreaterThanOrEqual(Date.parse(done.startedAt!));
    expect(done.metrics!.duration).toBeGreaterThanOrEqual(300);
    expect((await index.get("t1"))?.value).toEqual(done);
  });

  it("lists a task published by a raw NATS client from running on, and its error code when it fails", async () => {
    await startWorker(env);
    await publishTask(env, { taskID: "raw", prompt: script({ sleep: 300 }, { text: "raw" }) });
    await publishTask(env, {
      taskID: "raw-bad",
      prompt: script({ fail: { message: "model refused", retryable: false } }),
    });
    await waitFor(
      () => view!.get("raw")?.status === "completed" && view!.get("raw-bad")?.status === "error",
      {
        message: "both raw tasks finished in the view",
      },
    );
    expect(seen.get("raw")).toEqual(["running", "completed"]);
    expect(view!.get("raw")).toMatchObject({
      session: "raw",
      attempts: 1,
      prompt: expect.stringContaining("sleep"),
    });
    expect(view!.get("raw")?.submittedAt).toBeUndefined();
    expect(view!.get("raw-bad")).toMatchObject({
      errorCode: expect.any(String),
      error: expect.stringContaining("model refused"),
    });
    const page = view!.list({ status: "error" });
    expect(page.items.map((r) => r.taskID)).toEqual(["raw-bad"]);
  });

  it("records an invalid raw task's error result (no running record: it never ran)", async () => {
    await startWorker(env);
    await publishTask(env, JSON.stringify({ taskID: "bad-op", op: "explode" }));
    await waitFor(() => view!.get("bad-op")?.status === "error", { message: "bad-op in the view" });
    expect(seen.get("bad-op")).toEqual(["error"]);
    expect(view!.get("bad-op")?.errorCode).toBe("INVALID_TASK");
  });

  it("never fails or holds a task when the index cannot be written", async () => {
    await view?.stop();
    view = undefined;
    const jsm = await jetstreamManager(env.nc);
    const dispatcher = await env.connect();
    // After the dispatcher's and before the worker's topology check (which would make it again).
    await jsm.streams.delete(`KV_${env.names.kv.tasks}`);
    const handle = await dispatcher.submit({ taskID: "t2", prompt: script({ text: "still fine" }) });
    await startWorker(env, undefined, { ensureTopology: false });
    expect(await handle.result()).toMatchObject({ status: "completed", result: "still fine" });
    expect(env.dispatcherLogs.some((l) => l.includes("could not record the task as queued"))).toBe(true);
    await waitFor(() => env.logs.some((l) => l.includes("could not write the task index record")), {
      message: "the worker's warning",
    });
  });
});
