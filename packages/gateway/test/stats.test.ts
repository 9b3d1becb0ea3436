// GET /v1/stats and GET /v1/costs over real tasks of known cost (the scripted driver reports the
// script's cost, tokens and model), plus records of older hours written to the task index itself;
// and the text search `q` of GET /v1/tasks.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { TaskIndex } from "@station-coding/protocol";
import type { TaskIndexRecord, TaskResult } from "@station-coding/protocol";
import { waitFor } from "@station-coding/testkit";
import { ScriptedDriver, script, startWorker } from "@station-coding/testkit/worker";
import type { Script } from "@station-coding/testkit/worker";
import type { GatewayEnv } from "./support/gateway-env.js";
import { TOKENS, problemOf, startGatewayEnv } from "./support/gateway-env.js";

const HOUR = 3_600_000;

let env: GatewayEnv;
let index: TaskIndex;
beforeAll(async () => {
  env = await startGatewayEnv();
  await startWorker(env, new ScriptedDriver(), { concurrency: 4, maxAttempts: 1 });
  index = new TaskIndex(env.nc, env.names);
});
afterAll(async () => {
  await env?.close();
});

async function run(taskID: string, billed: Script): Promise<TaskResult> {
  const submitted = await env.api("/v1/tasks", {
    method: "POST",
    json: { taskID, prompt: JSON.stringify(billed) },
  });
  expect(submitted.status).toBe(202);
  const result = await env.api(`/v1/tasks/${taskID}/result?wait=30s`);
  expect(result.status).toBe(200);
  return (await result.json()) as TaskResult;
}

/** A finished record written straight to the index, as a worker would have `hoursAgo` hours ago. */
async function writeOld(taskID: string, hoursAgo: number, metrics: TaskIndexRecord["metrics"]) {
  const finished = Date.now() - hoursAgo * HOUR;
  await index.update({
    taskID,
    status: "completed",
    submittedAt: new Date(finished - 60_000).toISOString(),
    startedAt: new Date(finished - 50_000).toISOString(),
    finishedAt: new Date(finished).toISOString(),
    prompt: "an older task",
    metrics,
  });
  await waitFor(async () => (await env.api(`/v1/tasks/${taskID}`)).ok, { message: `${taskID} in the view` });
}

interface OrgStats {
  org: string;
  tasksPerMinute: number[];
  costPerHour: number[];
  totals: { tasks: number; completed: number; cost: number; tokens: number };
}
interface CostLine {
  org: string;
  model: string | null;
  provider?: string;
  tasks: number;
  tokens: number;
  inputTokens: number;
  outputTokens: number;
  cost: number;
}

describe("GET /v1/stats and /v1/costs", () => {
  const results: TaskResult[] = [];

  beforeAll(async () => {
    // Costs that are exact in binary, so that sums compare exactly.
    results.push(
      ...(await Promise.all([
        run("cost-a1", {
          steps: [{ text: "a1" }],
          usage: { input: 100, output: 10 },
          cost: 0.25,
          model: "model-a",
        }),
        run("cost-a2", {
          steps: [{ text: "a2" }],
          usage: { input: 200, output: 20 },
          cost: 0.5,
          model: "model-a",
        }),
        run("cost-b1", {
          steps: [{ text: "b1" }],
          usage: { input: 40, output: 4 },
          cost: 0.125,
          model: "model-b",
        }),
        run("cost-fail", { steps: [{ fail: { message: "no luck", retryable: false } }] }),
      ])),
    );
    await writeOld("old-3h", 3, {
      duration: 1000,
      toolCalls: 0,
      tokens: 66,
      inputTokens: 60,
      outputTokens: 6,
      cost: 2,
      model: "model-old",
      provider: "test",
    });
    // A record written before the index kept input and output apart: its tokens still count.
    await writeOld("old-30h", 30, {
      duration: 1000,
      toolCalls: 0,
      tokens: 500,
      cost: 4,
      model: "model-old",
      provider: "test",
    });
  });

  it("counts each finished task in its minute and sums its cost in its hour, an older hour included", async () => {
    expect(results.map((r) => r.status)).toEqual(["completed", "completed", "completed", "error"]);
    const response = await env.api("/v1/stats", { token: TOKENS.viewer });
    expect(response.status).toBe(200);
    const stats = (await response.json()) as { from: string; to: string; hours: number; orgs: OrgStats[] };
    expect(stats.hours).toBe(24);
    const from = Date.parse(stats.from);
    expect(Date.parse(stats.to) - from).toBe(24 * HOUR);
    expect(stats.orgs).toHaveLength(1);
    const [mine] = stats.orgs;

    // What was run, bucketed by hand: the live tasks at their results' completedAt, the record of
    // 3 hours ago at its time; the one of 30 hours ago is outside the day.
    const perMinute = new Array<number>(24 * 60).fill(0);
    const perHour = new Array<number>(24).fill(0);
    const old = Date.parse((await index.get("old-3h"))!.value.finishedAt!);
    for (const [at, cost] of [
      ...results.map((r) => [Date.parse(r.completedAt!), r.metrics.cost ?? 0] as const),
      [old, 2] as const,
    ]) {
      perMinute[Math.floor((at - from) / 60_000)]! += 1;
      perHour[Math.floor((at - from) / HOUR)]! += cost;
    }
    const tokens = results.reduce(
      (n, r) => n + (r.metrics.tokens ? r.metrics.tokens.input + r.metrics.tokens.output : 0),
      0,
    );
    expect(tokens).toBeGreaterThanOrEqual(110 + 220 + 44);
    expect(mine).toEqual({
      org: "",
      tasksPerMinute: perMinute,
      costPerHour: perHour,
      totals: { tasks: 5, completed: 4, cost: 2.875, tokens: tokens + 66 },
    });
    expect(perHour.filter((c) => c > 0)).toHaveLength(2);

    const twoHours = (await (await env.api("/v1/stats?hours=2")).json()) as { orgs: OrgStats[] };
    expect(twoHours.orgs[0]!.tasksPerMinute).toHaveLength(120);
    expect(twoHours.orgs[0]!.totals).toMatchObject({ tasks: 4, cost: 0.875 });
  });

  it("sums tasks, input and output tokens and cost by model", async () => {
    const response = await env.api("/v1/costs", { token: TOKENS.viewer });
    expect(response.status).toBe(200);
    const table = (await response.json()) as { since: string | null; items: CostLine[] };
    expect(table.since).toBeNull();
    const line = (model: string) => table.items.find((l) => l.model === model);
    expect(line("model-old")).toEqual({
      org: "",
      model: "model-old",
      provider: "test",
      tasks: 2,
      tokens: 566,
      inputTokens: 60,
      outputTokens: 6,
      cost: 6,
    });
    expect(line("model-a")).toEqual({
      org: "",
      model: "model-a",
      provider: "test",
      tasks: 2,
      tokens: 330,
      inputTokens: 300,
      outputTokens: 30,
      cost: 0.75,
    });
    expect(line("model-b")).toMatchObject({ tasks: 1, inputTokens: 40, outputTokens: 4, cost: 0.125 });
    // Costliest first.
    expect(table.items.map((l) => l.cost)).toEqual([...table.items.map((l) => l.cost)].sort((a, b) => b - a));

    const since = new Date(Date.now() - 26 * HOUR).toISOString();
    const recent = (await (await env.api(`/v1/costs?since=${since}`)).json()) as { items: CostLine[] };
    expect(recent.items.find((l) => l.model === "model-old")).toMatchObject({ tasks: 1, cost: 2 });
  });

  it("names a bad hours or since", async () => {
    for (const [path, field] of [
      ["/v1/stats?hours=0", "query.hours"],
      ["/v1/stats?hours=169", "query.hours"],
      ["/v1/stats?hours=1.5", "query.hours"],
      ["/v1/costs?since=yesterday", "query.since"],
    ] as const) {
      const response = await env.api(path);
      expect(response.status, path).toBe(422);
      expect(await problemOf(response)).toMatchObject({ field });
    }
    expect((await env.api("/v1/stats", { token: null })).status).toBe(401);
  });
});

describe("GET /v1/tasks?q=", () => {
  it("finds a task by its prompt's text, ignoring case, past the first page of the unfiltered list", async () => {
    const target = await run("needle-task", {
      steps: [{ text: "Fix the FLAKY login spec" }],
    });
    expect(target.status).toBe("completed");
    // 60 newer tasks in front of it, written to the index as the dispatcher writes a submit's.
    await Promise.all(
      Array.from({ length: 60 }, (_, i) =>
        index.update({
          taskID: `hay-${i}`,
          status: "queued",
          submittedAt: new Date().toISOString(),
          prompt: script({ text: `hay ${i}` }),
        }),
      ),
    );
    await waitFor(async () => (await env.api("/v1/tasks/hay-59")).ok, { message: "hay in the view" });
    const first = (await (await env.api("/v1/tasks?limit=50")).json()) as { items: { taskID: string }[] };
    expect(first.items.map((t) => t.taskID)).not.toContain("needle-task");

    const found = (await (
      await env.api("/v1/tasks?limit=50&q=flaky%20LOGIN", { token: TOKENS.viewer })
    ).json()) as {
      items: { taskID: string }[];
      next: string | null;
    };
    expect(found.items.map((t) => t.taskID)).toEqual(["needle-task"]);
    expect(found.next).toBeNull();
    const none = (await (await env.api("/v1/tasks?q=no%20such%20text")).json()) as { items: unknown[] };
    expect(none.items).toEqual([]);
    const long = await env.api(`/v1/tasks?q=${"x".repeat(201)}`);
    expect(long.status).toBe(422);
    expect(await problemOf(long)).toMatchObject({ field: "query.q" });
  });
});
