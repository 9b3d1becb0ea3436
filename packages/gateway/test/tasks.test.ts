import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { StreamEvent, TaskResult } from "@station-coding/protocol";
import { waitFor } from "@station-coding/testkit";
import { ScriptedDriver, publishTask, script, startWorker } from "@station-coding/testkit/worker";
import type { GatewayEnv, SseEvent } from "./support/gateway-env.js";
import { problemOf, readSse, startGatewayEnv } from "./support/gateway-env.js";

let env: GatewayEnv;
const driver = new ScriptedDriver();
beforeAll(async () => {
  env = await startGatewayEnv();
  await startWorker(env, driver, { concurrency: 4, maxAttempts: 2 });
});
afterAll(async () => {
  await env?.close();
});

const runs = (taskID: string) => driver.calls.filter((c) => c.taskID === taskID).length;
const seqsOf = (events: SseEvent[]) => events.filter((e) => e.event !== "result").map((e) => Number(e.id));
const oneTo = (n: number) => Array.from({ length: n }, (_, i) => i + 1);

async function submit(task: unknown, headers: Record<string, string> = {}) {
  const response = await env.api("/v1/tasks", { method: "POST", json: task, headers });
  const body = (await response.json()) as {
    taskID: string;
    status: string;
    duplicate: boolean;
    links: { self: string; events: string; result: string; cancel: string };
  };
  return { response, body };
}

async function resultOf(taskID: string): Promise<TaskResult> {
  const response = await env.api(`/v1/tasks/${taskID}/result?wait=30s`);
  expect(response.status).toBe(200);
  return (await response.json()) as TaskResult;
}

describe("submit and follow over HTTP", () => {
  it("answers 202 with links once stored, and streams every event then the result over SSE", async () => {
    const { response, body } = await submit({
      prompt: script({ text: "hello " }, { tool: { name: "bash" } }, { text: "world" }),
    });
    expect(response.status).toBe(202);
    expect(body.taskID).toMatch(/^t-/);
    expect(body).toMatchObject({ status: "queued", duplicate: false });
    expect(body.links).toEqual({
      self: `/v1/tasks/${body.taskID}`,
      events: `/v1/tasks/${body.taskID}/events`,
      result: `/v1/tasks/${body.taskID}/result`,
      cancel: `/v1/tasks/${body.taskID}/cancel`,
    });
    expect(response.headers.get("location")).toBe(body.links.self);

    const sse = await env.api(body.links.events);
    expect(sse.status).toBe(200);
    expect(sse.headers.get("content-type")).toMatch(/^text\/event-stream/);
    const { events, ended } = await readSse(sse);
    expect(ended).toBe(true);
    const last = events.at(-1)!;
    expect(last.event).toBe("result");
    expect(last.id).toBeUndefined();
    const result = JSON.parse(last.data) as TaskResult;
    expect(result).toMatchObject({ taskID: body.taskID, status: "completed", result: "hello world" });
    const streamed = events.slice(0, -1);
    expect(seqsOf(streamed)).toEqual(oneTo(result.metrics.streamEvents));
    for (const e of streamed) {
      const data = JSON.parse(e.data) as StreamEvent;
      expect(e.event).toBe(data.type);
      expect(String(data.seq)).toBe(e.id);
    }
    expect(streamed.map((e) => e.event)).toContain("tool_start");
    expect(await resultOf(body.taskID)).toEqual(result);
  });

  it("takes the Idempotency-Key as the taskID and runs a repeated submit once", async () => {
    const task = { prompt: script({ text: "once" }) };
    const first = await submit(task, { "Idempotency-Key": "idem-1" });
    expect(first.response.status).toBe(202);
    expect(first.body).toMatchObject({ taskID: "idem-1", duplicate: false });
    const second = await submit(task, { "Idempotency-Key": "idem-1" });
    expect(second.response.status).toBe(200);
    expect(second.body).toMatchObject({ taskID: "idem-1", duplicate: true });
    expect((await resultOf("idem-1")).status).toBe("completed");
    // Again after it finished (and the index says so): still the same task, and it does not run again.
    await waitFor(
      async () => {
        const { items } = (await (await env.api("/v1/tasks?status=completed")).json()) as {
          items: { taskID: string }[];
        };
        return items.some((t) => t.taskID === "idem-1");
      },
      { message: "idem-1 completed in the index" },
    );
    const third = await submit(task, { "Idempotency-Key": "idem-1" });
    expect(third.response.status).toBe(200);
    expect(third.body).toMatchObject({ taskID: "idem-1", status: "completed", duplicate: true });

    // Two at once with one key: one is accepted, the other is the repeat.
    const racing = await Promise.all([1, 2].map(() => submit(task, { "Idempotency-Key": "idem-race" })));
    expect(racing.map((r) => r.response.status).sort()).toEqual([200, 202]);
    expect((await resultOf("idem-race")).status).toBe("completed");
    await waitFor(async () => (await env.api("/v1/tasks/idem-race")).ok, { message: "idem-race indexed" });
    expect(runs("idem-1")).toBe(1);
    expect(runs("idem-race")).toBe(1);
  });

  it("resumes an event stream after Last-Event-ID mid-task with no gap and no duplicate", async () => {
    const { body } = await submit({
      taskID: "resume-1",
      prompt: script(
        { text: "one" },
        { tool: { name: "bash" } },
        { sleep: 1500 },
        { text: "three" },
        { tool: { name: "grep" } },
      ),
    });
    // First connection: read until the first tool ends, then drop it while the task sleeps.
    const first = await readSse(await env.api(body.links.events), (e) => e.event === "tool_end");
    expect(first.ended).toBe(false);
    const lastID = first.events.at(-1)!.id!;
    const status = (await (await env.api("/v1/tasks/resume-1")).json()) as { status: string };
    expect(status.status).toBe("running");

    const second = await readSse(await env.api(body.links.events, { headers: { "Last-Event-ID": lastID } }));
    expect(second.ended).toBe(true);
    const result = JSON.parse(second.events.at(-1)!.data) as TaskResult;
    expect(result.status).toBe("completed");
    const all = [...seqsOf(first.events), ...seqsOf(second.events)];
    expect(all).toEqual(oneTo(result.metrics.streamEvents));
    expect(seqsOf(second.events)[0]).toBe(Number(lastID) + 1);

    // ?after= does the same for clients that cannot set headers.
    const after = await readSse(await env.api(`${body.links.events}?after=${lastID}`));
    expect(seqsOf(after.events)).toEqual(seqsOf(second.events));
  });

  it("sends heartbeat comments while a task is quiet", async () => {
    const { body } = await submit({ taskID: "quiet-1", prompt: script({ sleep: 1200 }, { text: "done" }) });
    const { comments, events } = await readSse(await env.api(body.links.events));
    expect(events.at(-1)!.event).toBe("result");
    expect(comments).toBeGreaterThan(0);
  });

  it("long-polls a result: 202 with the status when the wait ends first, 200 with the result", async () => {
    const { body } = await submit({ taskID: "poll-1", prompt: script({ sleep: 1500 }, { text: "late" }) });
    const early = await env.api(`${body.links.result}?wait=200ms`);
    expect(early.status).toBe(202);
    const view = (await early.json()) as { taskID: string; status: string };
    expect(view.taskID).toBe("poll-1");
    expect(["queued", "running"]).toContain(view.status);
    const done = await env.api(`${body.links.result}?wait=30s`);
    expect(done.status).toBe(200);
    expect(await done.json()).toMatchObject({ taskID: "poll-1", status: "completed", result: "late" });

    const bad = await env.api(`${body.links.result}?wait=soon`);
    expect(bad.status).toBe(422);
    expect(await problemOf(bad)).toMatchObject({ field: "query.wait" });
  });

  it("cancels a running task", async () => {
    const { body } = await submit({
      taskID: "cancel-1",
      prompt: script({ text: "start" }, { sleep: 30_000 }),
    });
    await waitFor(
      async () =>
        ((await (await env.api(body.links.self)).json()) as { status: string }).status === "running",
      {
        message: "cancel-1 running",
      },
    );
    const cancel = await env.api(body.links.cancel, { method: "POST", json: { reason: "changed my mind" } });
    expect(cancel.status).toBe(202);
    expect(await cancel.json()).toEqual({ taskID: "cancel-1", status: "cancelling" });
    const result = await resultOf("cancel-1");
    expect(result.status).toBe("cancelled");
    const view = (await (await env.api(body.links.self)).json()) as { status: string; result?: unknown };
    expect(view.status).toBe("cancelled");
    expect(view.result).toMatchObject({ status: "cancelled" });

    const missing = await env.api("/v1/tasks/no-such-task/cancel", { method: "POST" });
    expect(missing.status).toBe(404);
  });

  it("lists tasks newest first with filters and cursor pages", async () => {
    for (const [taskID, session] of [
      ["list-a", "sess-l1"],
      ["list-b", "sess-l2"],
      ["list-c", "sess-l1"],
    ] as const) {
      await submit({ taskID, prompt: script({ text: taskID }), session: { name: session } });
      await resultOf(taskID);
    }
    const page = async (query: string) => {
      const response = await env.api(`/v1/tasks?${query}`);
      expect(response.status).toBe(200);
      return (await response.json()) as {
        items: { taskID: string; status: string; session?: string }[];
        next: string | null;
      };
    };
    await waitFor(async () => (await page("session=sess-l1&status=completed")).items.length === 2, {
      message: "index",
    });
    const l1 = await page("session=sess-l1");
    expect(l1.items.map((t) => t.taskID)).toEqual(["list-c", "list-a"]);
    expect(l1.next).toBeNull();
    const first = await page("session=sess-l1&limit=1");
    expect(first.items.map((t) => t.taskID)).toEqual(["list-c"]);
    expect(first.next).not.toBeNull();
    const second = await page(`session=sess-l1&limit=1&cursor=${encodeURIComponent(first.next!)}`);
    expect(second.items.map((t) => t.taskID)).toEqual(["list-a"]);
    const cancelled = await page("status=cancelled,timeout");
    expect(cancelled.items.every((t) => t.status === "cancelled" || t.status === "timeout")).toBe(true);
    const worker = env.workers[0]!.workerID;
    expect((await page(`worker=${worker}&session=sess-l2`)).items.map((t) => t.taskID)).toEqual(["list-b"]);
    expect((await page("worker=nobody")).items).toEqual([]);
    expect(
      (await page(`since=${encodeURIComponent(new Date(Date.now() + 60_000).toISOString())}`)).items,
    ).toEqual([]);
    const longAgo = encodeURIComponent(new Date(Date.now() - 3_600_000).toISOString());
    expect((await page(`session=sess-l1&until=${longAgo}`)).items).toEqual([]);
    const soon = encodeURIComponent(new Date(Date.now() + 60_000).toISOString());
    expect((await page(`session=sess-l1&since=${longAgo}&until=${soon}`)).items.map((t) => t.taskID)).toEqual(
      ["list-c", "list-a"],
    );

    for (const [query, field] of [
      ["status=finished", "query.status"],
      ["limit=0", "query.limit"],
      ["limit=x", "query.limit"],
      ["since=yesterday", "query.since"],
      ["until=tomorrow", "query.until"],
    ] as const) {
      const response = await env.api(`/v1/tasks?${query}`);
      expect(response.status, query).toBe(422);
      expect(await problemOf(response)).toMatchObject({ field });
    }
    expect((await env.api("/v1/tasks?cursor=garbage")).status).toBe(422);
  });

  it("streams changes of the task index over SSE, queued to running to completed, coalesced per task", async () => {
    const stream = await env.api("/v1/task-changes");
    expect(stream.status).toBe(200);
    expect(stream.headers.get("content-type")).toMatch(/^text\/event-stream/);
    const seen: { taskID: string; status: string }[] = [];
    const reading = readSse(stream, (event) => {
      expect(event.event).toBe("task");
      const view = JSON.parse(event.data) as { taskID: string; status: string; links: { self: string } };
      expect(view.links.self).toBe(`/v1/tasks/${view.taskID}`);
      if (view.taskID === "changes-1") seen.push(view);
      return view.taskID === "changes-1" && view.status === "completed";
    });
    const { response } = await submit({
      taskID: "changes-1",
      prompt: script({ text: "a" }, { sleep: 300 }, { text: "b" }),
    });
    expect(response.status).toBe(202);
    const { ended } = await reading;
    expect(ended).toBe(false);
    const statuses = seen.map((v) => v.status);
    expect(statuses.at(-1)).toBe("completed");
    expect(statuses).toContain("running");
    // In the order they happened; a state is not repeated after a later one.
    const rank = ["queued", "running", "completed"];
    const ranks = statuses.map((s) => rank.indexOf(s));
    expect(ranks).toEqual([...ranks].sort((a, b) => a - b));
  });

  it("lists a task's objects and serves their bytes equal to the object store's", async () => {
    await env.dispatcher.artifacts.stage("art-1", "brief.txt", "the brief\n");
    const { body } = await submit({
      taskID: "art-1",
      prompt: script({ writeFile: { name: "out.txt", content: "made over http\n" } }),
      inputs: ["brief.txt"],
    });
    await resultOf(body.taskID);
    const list = await env.api(`/v1/tasks/${body.taskID}/artifacts`);
    expect(list.status).toBe(200);
    const { items } = (await list.json()) as {
      items: { key: string; kind: string; size: number; url: string }[];
    };
    expect(items.map((i) => i.kind).sort()).toEqual(["input", "patch"]);
    for (const item of items) {
      expect(item.url).toBe(`/v1/artifacts/${item.key}`);
      const download = await env.api(item.url);
      expect(download.status).toBe(200);
      const bytes = new Uint8Array(await download.arrayBuffer());
      expect(Buffer.from(bytes).equals(Buffer.from(await env.dispatcher.artifacts.get(item.key)))).toBe(true);
      expect(bytes.byteLength).toBe(item.size);
    }
    const patch = items.find((i) => i.kind === "patch")!;
    expect(patch.key).toBe("output/art-1/changes.patch");
    expect(await (await env.api(patch.url)).text()).toContain("made over http");

    for (const path of [
      "/v1/artifacts/output/art-1/nothing.txt",
      "/v1/artifacts/output/art-1/%2E%2E/%2E%2E/x",
      "/v1/artifacts/sessions/export",
      "/v1/tasks/no-such-task/artifacts",
    ]) {
      const response = await env.api(path);
      expect(response.status, path).toBe(404);
      await problemOf(response);
    }
  });

  it("shows a task published over raw NATS in the list and streams its events", async () => {
    await publishTask(env, { taskID: "raw-1", prompt: script({ text: "from nats" }) }, "raw-1");
    const sse = await waitFor(
      async () => {
        const response = await env.api("/v1/tasks/raw-1/events");
        if (response.status === 404) {
          await response.body?.cancel();
          return undefined;
        }
        return response;
      },
      { message: "raw-1 known to the gateway" },
    );
    const { events } = await readSse(sse);
    const result = JSON.parse(events.at(-1)!.data) as TaskResult;
    expect(result).toMatchObject({ taskID: "raw-1", status: "completed", result: "from nats" });
    expect(seqsOf(events)).toEqual(oneTo(result.metrics.streamEvents));
    await waitFor(
      async () => {
        const { items } = (await (await env.api("/v1/tasks?status=completed")).json()) as {
          items: { taskID: string }[];
        };
        return items.some((t) => t.taskID === "raw-1");
      },
      { message: "raw-1 listed" },
    );
  });

  it("replays dead letters in bulk by filter", async () => {
    const ids = ["bulk-1", "bulk-2"];
    for (const taskID of ids) {
      await submit({
        taskID,
        prompt: script({ fail: { message: "flaky", retryable: true }, times: 2 }, { text: "ok" }),
      });
    }
    const letters = await waitFor(
      async () => {
        const { items } = (await (await env.api("/v1/dead-letters")).json()) as {
          items: { taskID: string; errorCode?: string }[];
        };
        const mine = items.filter((l) => ids.includes(l.taskID));
        return mine.length === ids.length ? mine : undefined;
      },
      { message: "both dead-lettered" },
    );
    const errorCode = letters[0]!.errorCode;
    expect(errorCode).toBeDefined();
    const bad = await env.api("/v1/dead-letters/replay", { method: "POST", json: { limit: 0 } });
    expect(bad.status).toBe(422);
    expect(await problemOf(bad)).toMatchObject({ field: "body.limit" });
    const replay = await env.api("/v1/dead-letters/replay", {
      method: "POST",
      json: { taskIDs: [...ids, "bulk-none"], errorCode },
    });
    expect(replay.status).toBe(200);
    const body = (await replay.json()) as { replayed: string[]; failed: unknown[] };
    expect(body.replayed.sort()).toEqual(ids);
    expect(body.failed).toEqual([]);
    for (const id of ids) expect((await resultOf(id)).status).toBe("completed");
  });

  it("reads sessions, workers and status, and replays a dead letter", async () => {
    const { body } = await submit({
      taskID: "dead-1",
      prompt: script(
        { fail: { message: "flaky provider", retryable: true }, times: 2 },
        { text: "third time" },
      ),
    });
    const dead = await waitFor(
      async () => {
        const { items } = (await (await env.api("/v1/dead-letters")).json()) as {
          items: { taskID: string }[];
        };
        return items.find((l) => l.taskID === "dead-1");
      },
      { message: "dead-1 dead-lettered" },
    );
    expect(dead).toMatchObject({ taskID: "dead-1" });
    const replay = await env.api(`/v1/dead-letters/${body.taskID}/replay`, { method: "POST" });
    expect(replay.status).toBe(202);
    expect(await resultOf("dead-1")).toMatchObject({ status: "completed", result: "third time" });
    expect((await env.api("/v1/dead-letters/no-such-task/replay", { method: "POST" })).status).toBe(404);

    const sessions = (await (await env.api("/v1/sessions")).json()) as { items: { sessionName: string }[] };
    expect(sessions.items.map((s) => s.sessionName)).toContain("dead-1");
    const workers = (await (await env.api("/v1/workers")).json()) as {
      items: { workerID: string; liveness: string }[];
    };
    expect(workers.items).toEqual([
      expect.objectContaining({ workerID: env.workers[0]!.workerID, liveness: "alive" }),
    ]);
    const status = (await (await env.api("/v1/status")).json()) as {
      workers: unknown[];
      tasks: { stream: string };
    };
    expect(status.tasks.stream).toBe(env.names.streams.tasks);

    // Tasks that finished while the gateway watched the index are in its metrics.
    const metrics = await (await fetch(`${env.url}/metrics`)).text();
    const finished = /^station_gateway_task_duration_seconds_count\{org="",status="completed"\} (\d+)$/m.exec(
      metrics,
    );
    expect(Number(finished?.[1])).toBeGreaterThan(5);
    expect(metrics).toMatch(/^station_tasks\{org="",status="completed"\} \d+$/m);
    expect(metrics).toMatch(/^station_gateway_sse_clients\{org=""\} 0$/m);
  });
});
