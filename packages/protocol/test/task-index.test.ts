import { connect } from "@nats-io/transport-node";
import type { NatsConnection } from "@nats-io/transport-node";
import { Kvm } from "@nats-io/kv";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  TASK_INDEX_PROMPT_LENGTH,
  TaskIndex,
  TaskIndexView,
  ValidationError,
  codingNames,
  ensureTopology,
  finishedRecord,
  mergeTaskRecord,
  queuedRecord,
  runningRecord,
} from "@station-coding/protocol";
import type { TaskIndexRecord, TaskResult } from "@station-coding/protocol";
import { NatsServer, waitFor } from "@station-coding/testkit";

const T0 = Date.parse("2026-01-01T00:00:00Z");

function rec(i: number, fields: Partial<TaskIndexRecord> = {}): TaskIndexRecord {
  return {
    taskID: `t${String(i).padStart(5, "0")}`,
    status: (["queued", "running", "completed", "error"] as const)[i % 4]!,
    session: `s${i % 10}`,
    worker: `w${i % 3}`,
    submittedAt: new Date(T0 + i * 1000).toISOString(),
    ...fields,
  };
}

function result(taskID: string, status: TaskResult["status"], fields: Partial<TaskResult> = {}): TaskResult {
  return {
    taskID,
    status,
    session: { name: "s", opencodeID: "ses", messageCount: 1 },
    workspace: { name: "s", path: "/w/s" },
    metrics: {
      duration: 1200,
      toolCalls: 3,
      streamEvents: 9,
      attempts: 1,
      tokens: { input: 100, output: 20, reasoning: 0, cacheRead: 0, cacheWrite: 0 },
      cost: 0.01,
      model: "m1",
    },
    workerID: "w1",
    completedAt: "2026-01-01T00:01:00Z",
    ...fields,
  };
}

describe("TaskIndexView", () => {
  const view = new TaskIndexView();
  for (let i = 0; i < 1000; i += 1) view.apply(rec(i));

  it("lists newest first and pages with a cursor without gaps or repeats", () => {
    const seen: string[] = [];
    let cursor: string | undefined;
    for (;;) {
      const page = view.list({ limit: 70, ...(cursor !== undefined ? { cursor } : {}) });
      seen.push(...page.items.map((r) => r.taskID));
      if (page.next === null) break;
      cursor = page.next;
    }
    expect(seen).toHaveLength(1000);
    expect(seen[0]).toBe("t00999");
    expect(seen.at(-1)).toBe("t00000");
    expect(new Set(seen).size).toBe(1000);
    expect([...seen].sort().reverse()).toEqual(seen);
  });

  it("filters by status, session, worker and since, all at once, and pages the filtered list", () => {
    const query = { status: "running" as const, session: "s1", worker: "w2", since: new Date(T0 + 500_000) };
    const want = Array.from({ length: 1000 }, (_, i) => rec(i))
      .filter((r) => r.status === "running" && r.session === "s1" && r.worker === "w2")
      .filter((r) => Date.parse(r.submittedAt!) >= T0 + 500_000)
      .map((r) => r.taskID)
      .reverse();
    expect(want.length).toBeGreaterThan(5);
    const first = view.list({ ...query, limit: 3 });
    expect(first.items.map((r) => r.taskID)).toEqual(want.slice(0, 3));
    expect(first.next).not.toBeNull();
    const rest = view.list({ ...query, limit: 1000, cursor: first.next! });
    expect(rest.items.map((r) => r.taskID)).toEqual(want.slice(3));
    expect(rest.next).toBeNull();
    expect(view.list({ status: ["completed", "error"], limit: 1000 }).items).toHaveLength(500);
  });

  it("keeps to a time range with since and until (until excluded), across pages", () => {
    const range = { since: new Date(T0 + 100_000), until: new Date(T0 + 200_000) };
    const want = Array.from({ length: 1000 }, (_, i) => rec(i))
      .filter((r) => {
        const at = Date.parse(r.submittedAt!);
        return at >= T0 + 100_000 && at < T0 + 200_000;
      })
      .map((r) => r.taskID)
      .reverse();
    expect(want.length).toBeGreaterThan(10);
    const first = view.list({ ...range, limit: 10 });
    expect(first.items.map((r) => r.taskID)).toEqual(want.slice(0, 10));
    const rest = view.list({ ...range, limit: 1000, cursor: first.next! });
    expect(rest.items.map((r) => r.taskID)).toEqual(want.slice(10));
    expect(view.list({ until: new Date(T0 - 1) }).items).toEqual([]);
    expect(() => view.list({ until: "tomorrow" })).toThrow(/until "tomorrow": not an ISO 8601 time/);
  });

  it("finds tasks whose prompt excerpt contains q, ignoring case, across pages", () => {
    const v = new TaskIndexView();
    for (let i = 0; i < 300; i += 1) {
      v.apply(rec(i, { prompt: i % 100 === 7 ? `Fix the Flaky LOGIN test #${i}` : `task ${i}` }));
    }
    const first = v.list({ q: "flaky login", limit: 2 });
    expect(first.items.map((r) => r.taskID)).toEqual(["t00207", "t00107"]);
    expect(v.list({ q: "flaky login", cursor: first.next! }).items.map((r) => r.taskID)).toEqual(["t00007"]);
    expect(v.list({ q: "nowhere" }).items).toEqual([]);
    expect([...v.records()]).toHaveLength(300);
  });

  it("ends with next null when the last page is exactly full", () => {
    const small = new TaskIndexView();
    for (let i = 0; i < 4; i += 1) small.apply(rec(i));
    const page = small.list({ limit: 4 });
    expect(page.items).toHaveLength(4);
    expect(page.next).toBeNull();
  });

  it("moves a task when a record changes its time, and counts by status", () => {
    const v = new TaskIndexView();
    v.apply(
      rec(1, { status: "running", submittedAt: undefined, startedAt: new Date(T0 + 5000).toISOString() }),
    );
    v.apply(rec(2, { status: "queued" }));
    expect(v.list().items.map((r) => r.taskID)).toEqual(["t00001", "t00002"]);
    v.apply(rec(1, { status: "completed", submittedAt: new Date(T0).toISOString() }));
    expect(v.list().items.map((r) => r.taskID)).toEqual(["t00002", "t00001"]);
    expect(v.countByStatus()).toMatchObject({ queued: 1, running: 0, completed: 1 });
    v.remove("t00002");
    expect(v.size).toBe(1);
    expect(v.get("t00002")).toBeUndefined();
  });

  it("loads a whole bucket at once in the same order as one by one", () => {
    const loaded = new TaskIndexView();
    loaded.load(Array.from({ length: 1000 }, (_, i) => rec(i)));
    loaded.apply(rec(5, { status: "cancelled", submittedAt: new Date(T0 + 5_000_000).toISOString() }));
    const applied = new TaskIndexView();
    for (let i = 0; i < 1000; i += 1) applied.apply(rec(i));
    applied.apply(rec(5, { status: "cancelled", submittedAt: new Date(T0 + 5_000_000).toISOString() }));
    expect(loaded.list({ limit: 1000 })).toEqual(applied.list({ limit: 1000 }));
    expect(loaded.list({ limit: 1 }).items[0]?.taskID).toBe("t00005");
    expect(loaded.countByStatus()).toEqual(applied.countByStatus());
  });

  it("refuses a bad limit, since or cursor with an error naming it", () => {
    expect(() => view.list({ limit: 0 })).toThrow(/limit 0: must be an integer/);
    expect(() => view.list({ limit: 5000 })).toThrow(ValidationError);
    expect(() => view.list({ since: "yesterday" })).toThrow(/since "yesterday": not an ISO 8601 time/);
    expect(() => view.list({ cursor: "bm9wZQ" })).toThrow(/cursor: not a cursor/);
  });
});

describe("mergeTaskRecord", () => {
  const task = { taskID: "t1", prompt: "x".repeat(1000), session: { name: "s" } };
  const queued = queuedRecord(task, new Date(T0));
  const running = runningRecord(task, { worker: "w1", attempt: 1 }, new Date(T0 + 1000));
  const done = finishedRecord(result("t1", "completed"));

  it("keeps a bounded prompt excerpt", () => {
    expect([...(queued.prompt ?? "")].length).toBe(TASK_INDEX_PROMPT_LENGTH);
  });

  it("moves forward in any arrival order and never lets a late running undo the final state", () => {
    const orders = [
      [queued, running, done],
      [running, queued, done],
      [done, running, queued],
      [running, done, queued],
      [queued, done, running],
    ];
    const finals = orders.map((order) =>
      order.reduce<TaskIndexRecord | undefined>((cur, next) => mergeTaskRecord(cur, next) ?? cur, undefined),
    );
    for (const final of finals) {
      expect(final).toMatchObject({
        status: "completed",
        submittedAt: queued.submittedAt,
        startedAt: running.startedAt,
        worker: "w1",
        prompt: queued.prompt,
        metrics: { duration: 1200, tokens: 120, cost: 0.01, toolCalls: 3, model: "m1" },
      });
    }
    expect(mergeTaskRecord(finals[0], running)).toBeUndefined();
  });

  it("takes a later attempt's running record, and a replay's newer generation over a final one", () => {
    const second = runningRecord(task, { worker: "w2", attempt: 2 }, new Date(T0 + 9000));
    expect(mergeTaskRecord(running, second)).toMatchObject({ worker: "w2", attempts: 2 });
    expect(mergeTaskRecord(second, running)).toBeUndefined();
    // Handed back at shutdown, the same attempt runs again on another worker.
    const again = runningRecord(task, { worker: "w3", attempt: 1 }, new Date(T0 + 5000));
    expect(mergeTaskRecord(running, again)).toMatchObject({ worker: "w3", startedAt: again.startedAt });
    expect(mergeTaskRecord(again, running)).toBeUndefined();
    const failed = mergeTaskRecord(
      queued,
      finishedRecord(result("t1", "error", { errorCode: "X", error: "bad" })),
    )!;
    const replayed = mergeTaskRecord(failed, {
      ...queuedRecord(task, new Date(T0 + 60_000)),
      generation: 1,
    })!;
    expect(replayed).toMatchObject({ status: "queued", generation: 1 });
    expect(replayed.errorCode).toBeUndefined();
    expect(mergeTaskRecord(replayed, finishedRecord(result("t1", "error"), 0))).toBeUndefined();
  });
});

describe("TaskIndex on a real server", () => {
  let server: NatsServer;
  let nc: NatsConnection;
  const names = codingNames({ org: "acme" });
  beforeAll(async () => {
    server = await NatsServer.start();
    nc = await connect({ servers: server.url });
    await ensureTopology(nc, names, { resultsMaxAge: "3d" });
  });
  afterAll(async () => {
    await nc.close();
    await server.stop();
  });

  it("keeps records in coding-tasks-<org> as long as results are kept", async () => {
    expect(names.kv.tasks).toBe("coding-tasks-acme");
    const status = await (await new Kvm(nc).open(names.kv.tasks)).status();
    expect(status.ttl).toBe(3 * 86_400_000);
  });

  it("writes with compare-and-set from racing writers and a view follows every change", async () => {
    const index = new TaskIndex(nc, names);
    await index.record(queuedRecord({ taskID: "old", prompt: "p" }));
    const changes: string[] = [];
    const view = await TaskIndexView.start(index, {
      onChange: (r) => changes.push(`${r.taskID}:${r.status}`),
    });
    try {
      expect(view.get("old")?.status).toBe("queued");
      const others = await Promise.all(Array.from({ length: 4 }, () => connect({ servers: server.url })));
      try {
        const task = { taskID: "race", prompt: "do it" };
        await Promise.all([
          new TaskIndex(others[0]!, names).record(finishedRecord(result("race", "completed"))),
          new TaskIndex(others[1]!, names).record(runningRecord(task, { worker: "w1", attempt: 1 })),
          new TaskIndex(others[2]!, names).record(queuedRecord(task)),
          new TaskIndex(others[3]!, names).record(runningRecord(task, { worker: "w1", attempt: 1 })),
        ]);
      } finally {
        await Promise.all(others.map((c) => c.close()));
      }
      const stored = await index.get("race");
      expect(stored?.value).toMatchObject({ status: "completed", prompt: "do it", worker: "w1" });
      expect(stored?.value.submittedAt).toBeDefined();
      await waitFor(() => view.get("race")?.prompt === "do it", { timeout: 5000 });
      expect(view.get("race")?.status).toBe("completed");
      expect(changes).toContain("race:completed");
    } finally {
      await view.stop();
    }
  });

  it("starts on an empty bucket, and a junk entry reads as no record", async () => {
    const empty = codingNames({ org: "empty" });
    await ensureTopology(nc, empty);
    const index = new TaskIndex(nc, empty);
    const view = await TaskIndexView.start(index);
    try {
      expect(view.size).toBe(0);
      const kv = await index.open();
      await kv.put("junk", "not json");
      expect(await index.get("junk")).toBeUndefined();
      await index.record(queuedRecord({ taskID: "junk", prompt: "p" }));
      await waitFor(() => view.get("junk") !== undefined, { timeout: 5000 });
    } finally {
      await view.stop();
    }
  });

  it("record() never throws: a missing bucket is reported to onError and answered false", async () => {
    const errors: string[] = [];
    const index = new TaskIndex(nc, codingNames({ org: "nobucket" }), {
      timeout: 2000,
      onError: (err, taskID) => errors.push(`${taskID}: ${String(err)}`),
    });
    expect(await index.record(queuedRecord({ taskID: "t1", prompt: "p" }))).toBe(false);
    expect(errors).toHaveLength(1);
    expect(errors[0]).toMatch(/^t1: /);
  });
});
