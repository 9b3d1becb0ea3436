import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { CodingDispatcher } from "@station-coding/dispatcher";
import { script } from "@station-coding/testkit/worker";
import type { ChildMemory, ChildWorker, Env } from "./support/env.js";
import { startEnv } from "./support/env.js";
import { account, waitForResults } from "./support/ledger.js";
import { recordRow, seconds } from "./support/scenario-row.js";

const WORKERS = 4;
const CONCURRENCY = 8;
const WARMUP = 100;
const TOTAL = 1_000;

let env: Env;
beforeAll(async () => {
  env = await startEnv();
});
afterAll(async () => {
  await env?.close();
});

const mb = (bytes: number) => `${(bytes / 1024 / 1024).toFixed(0)} MB`;

function percentile(values: number[], p: number): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.floor((sorted.length * p) / 100))] ?? 0;
}

describe("5 load", () => {
  it("runs 1,000 tasks across 4 worker processes: all complete once, worker memory stays flat", async (context) => {
    const started = Date.now();
    const workers: ChildWorker[] = [];
    for (let i = 0; i < WORKERS; i += 1) {
      workers.push(await env.spawnWorker({ concurrency: CONCURRENCY, ackWait: 10_000, logLevel: "info" }));
    }
    const dispatcher = await CodingDispatcher.connect({ servers: env.servers, ensureTopology: false });
    const submittedAt = new Map<string, number>();
    const submit = async (from: number, to: number) => {
      const ids: string[] = [];
      for (let i = from; i < to; i += 1) {
        const taskID = `load-${i}`;
        submittedAt.set(taskID, Date.now());
        await dispatcher.submit({
          taskID,
          prompt: script({ text: `task ${i} ` }, { tool: { name: "bash", output: "ok" } }, { text: "done" }),
        });
        ids.push(taskID);
      }
      return ids;
    };

    // Warm up (JIT, buffers, connection pools), then measure memory from there.
    const warm = await submit(0, WARMUP);
    await waitForResults(env, warm, 60_000);
    const memStart: ChildMemory[] = await Promise.all(workers.map((w) => w.memory()));
    const rssStart = workers.map((w) => w.rss());

    const mainStart = Date.now();
    const rest = await submit(WARMUP, TOTAL);
    await waitForResults(env, rest, 150_000);
    const mainMs = Date.now() - mainStart;
    const memEnd: ChildMemory[] = await Promise.all(workers.map((w) => w.memory()));
    const rssEnd = workers.map((w) => w.rss());
    await dispatcher.close();

    const ids = [...warm, ...rest];
    const acc = await account(env, ids);
    const latencies = ids.map(
      (id) => (env.wiretap.results.get(id)?.[0]?.at ?? 0) - (submittedAt.get(id) ?? 0),
    );
    const runTimes = [...acc.results.values()].map((r) => r.metrics.duration);
    const perWorker = new Map<string, number>();
    for (const result of acc.results.values()) {
      perWorker.set(result.workerID ?? "?", (perWorker.get(result.workerID ?? "?") ?? 0) + 1);
    }
    const heapGrowth = Math.max(...memEnd.map((m, i) => m.heapUsed - (memStart[i]?.heapUsed ?? 0)));
    const rssGrowth = Math.max(...rssEnd.map((r, i) => r - (rssStart[i] ?? 0)));
    const leaks = await env.secretLeaks();
    recordRow(context, {
      scenario: "5 load: 1,000 tasks, 4 worker processes",
      submitted: acc.submitted,
      completed: acc.completed,
      lost: acc.lost.length,
      duplicated: acc.duplicated.length,
      durationMs: Date.now() - started,
      figures: {
        throughput: `${((rest.length / mainMs) * 1000).toFixed(0)} tasks/s`,
        "submit to result p50/p95": `${seconds(percentile(latencies, 50))}/${seconds(percentile(latencies, 95))}`,
        "run time p50/p95": `${percentile(runTimes, 50)}/${percentile(runTimes, 95)} ms`,
        "tasks per worker": [...perWorker.values()].sort((a, b) => a - b).join("/"),
        "worker RSS start->end": rssStart.map((r, i) => `${mb(r)}->${mb(rssEnd[i] ?? 0)}`).join(", "),
        "heap after GC start->end": memStart
          .map((m, i) => `${mb(m.heapUsed)}->${mb(memEnd[i]?.heapUsed ?? 0)}`)
          .join(", "),
        "wiretap messages": env.wiretap.messages,
        "secret leaks": leaks.length,
      },
    });
    expect(acc.lost).toEqual([]);
    expect(acc.duplicated).toEqual([]);
    expect(acc.unexpected).toEqual([]);
    expect(acc.completed).toBe(TOTAL);
    expect(perWorker.size).toBe(WORKERS);
    expect(leaks).toEqual([]);
    // Flat: after warm-up, 900 more tasks leave no more than a few MB behind per worker.
    expect(heapGrowth).toBeLessThan(24 * 1024 * 1024);
    expect(rssGrowth).toBeLessThan(96 * 1024 * 1024);
    expect(workers.every((w) => !w.exited)).toBe(true);
  });
});
