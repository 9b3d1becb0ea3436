// The worker's /metrics and /healthz over real HTTP: a real nats-server, the scripted driver.
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { waitFor } from "@station-coding/testkit";
import type { Env } from "@station-coding/testkit/worker";
import {
  ScriptedDriver,
  publishTask,
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

/** The value of the sample `name` whose labels include `labels` (in any order), or undefined. */
function sample(text: string, name: string, labels: Record<string, string>): number | undefined {
  for (const line of text.split("\n")) {
    const match = /^([a-z_]+)\{([^}]*)\} (\S+)$/.exec(line);
    if (!match || match[1] !== name) continue;
    const have = Object.fromEntries([...match[2]!.matchAll(/(\w+)="([^"]*)"/g)].map((m) => [m[1], m[2]]));
    if (Object.entries(labels).every(([k, v]) => have[k] === v)) return Number(match[3]);
  }
  return undefined;
}

async function get(url: string): Promise<{ status: number; body: string; type: string | null }> {
  const res = await fetch(url);
  return { status: res.status, body: await res.text(), type: res.headers.get("content-type") };
}

describe("worker /metrics and /healthz", () => {
  it("counts tasks by status, their duration, tokens and cost by model, and the slots in use", async () => {
    const worker = await startWorker(env, new ScriptedDriver(), {
      metricsListen: "127.0.0.1:0",
      concurrency: 3,
    });
    const base = worker.metricsUrl!;
    expect(base).toMatch(/^http:\/\/127\.0\.0\.1:\d+$/);
    const before = await get(`${base}/metrics`);
    expect(before.type).toMatch(/^text\/plain; version=0\.0\.4/);
    const slots = (body: string, state: string) =>
      sample(body, "station_coding_worker_slots", { worker: worker.workerID, state });
    expect([slots(before.body, "total"), slots(before.body, "busy")]).toEqual([3, 0]);

    await publishTask(env, {
      taskID: "slow",
      prompt: JSON.stringify({ steps: [{ sleep: 60_000 }] }),
    });
    await waitFor(async () => slots((await get(`${base}/metrics`)).body, "busy") === 1, {
      message: "a busy slot while the task runs",
    });
    await publishTask(env, {
      taskID: "ok",
      prompt: JSON.stringify({ steps: [{ text: "hi" }], usage: { input: 100, output: 20 } }),
    });
    await publishTask(env, {
      taskID: "bad",
      prompt: script({ fail: { message: "nope", retryable: false } }),
    });
    await waitResult(env, "ok");
    await waitResult(env, "bad");
    // A slot is given back once the task's lease is settled, a moment after its result.
    const text = await waitFor(
      async () => {
        const body = (await get(`${base}/metrics`)).body;
        return slots(body, "busy") === 1 && body;
      },
      { message: "the finished tasks' slots given back, the slow one still busy" },
    );
    const labels = { worker: worker.workerID, org: "" };
    expect(sample(text, "station_coding_tasks_total", { ...labels, status: "completed" })).toBe(1);
    expect(sample(text, "station_coding_tasks_total", { ...labels, status: "error" })).toBe(1);
    expect(
      sample(text, "station_coding_task_duration_seconds_count", { ...labels, status: "completed" }),
    ).toBe(1);
    expect(sample(text, "station_coding_tokens_total", { ...labels, kind: "input" })).toBe(100);
    expect(sample(text, "station_coding_tokens_total", { ...labels, kind: "output" })).toBe(20);
    expect(slots(text, "busy")).toBe(1);
    expect(text).toContain("process_resident_memory_bytes");
  });

  it("answers /healthz 200 while connected to NATS and 503 once the connection is down", async () => {
    const worker = await startWorker(env, new ScriptedDriver(), { metricsListen: "127.0.0.1:0" });
    const health = `${worker.metricsUrl!}/healthz`;
    expect(await get(health)).toMatchObject({ status: 200, body: "ok: nats: connected; worker running\n" });
    await env.server.stop();
    await waitFor(async () => (await get(health)).status === 503, { message: "503 once NATS is gone" });
    expect((await get(health)).body).toMatch(/^unhealthy: nats: 1 of 1 connections down/);
  });

  it("refuses a bad listen address with an error naming the option, and listens nowhere by default", async () => {
    await expect(
      startWorker(env, new ScriptedDriver(), { metricsListen: "nine-four-six-four" }),
    ).rejects.toThrow(/metricsListen "nine-four-six-four": must be HOST:PORT/);
    const worker = await startWorker(env);
    expect(worker.metricsUrl).toBeUndefined();
    expect(worker.metrics).toBeUndefined();
  });
});
