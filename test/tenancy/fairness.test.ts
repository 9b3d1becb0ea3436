import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { waitFor } from "@station-coding/testkit";
import type { DriverCall } from "@station-coding/testkit/worker";
import { ScriptedDriver, script } from "@station-coding/testkit/worker";
import type { TenancyEnv } from "./support/tenancy-env.js";
import { startTenancy } from "./support/tenancy-env.js";

const QUEUED = 200;
const TASK_MS = 50;
const CONCURRENCY = 4;
const PER_ORG = 3;

let env: TenancyEnv;
beforeAll(async () => {
  env = await startTenancy({ orgs: ["acme", "globex"] });
});
afterAll(async () => {
  await env?.close();
});

/** Most calls running at once, from their start and end times. */
function peak(calls: DriverCall[]): number {
  const edges = calls.flatMap((c) => [
    { at: c.startedAt, step: 1 },
    { at: c.endedAt ?? Number.POSITIVE_INFINITY, step: -1 },
  ]);
  edges.sort((a, b) => a.at - b.at || a.step - b.step);
  let running = 0;
  let most = 0;
  for (const edge of edges) {
    running += edge.step;
    most = Math.max(most, running);
  }
  return most;
}

describe("a shared worker serving two orgs, one connection per org account", () => {
  it("starts org B's task while org A's long queue is still waiting", async () => {
    const driver = new ScriptedDriver();
    const worker = await env.worker(["acme", "globex"], {
      driver,
      concurrency: CONCURRENCY,
      perOrgConcurrency: PER_ORG,
    });
    const acme = await env.dispatcher("acme");
    const globex = await env.dispatcher("globex");

    const ids = Array.from({ length: QUEUED }, (_, i) => `a${String(i).padStart(3, "0")}`);
    await Promise.all(ids.map((taskID) => acme.submit({ taskID, prompt: script({ sleep: TASK_MS }) })));
    // A's queue is being worked on before B arrives.
    await waitFor(() => driver.calls.length >= PER_ORG, { message: "org A's first tasks to start" });

    const submittedAt = Date.now();
    const theirs = await globex.submit({ taskID: "b1", prompt: script({ text: "b" }) });
    const b = await waitFor(() => driver.calls.find((c) => c.taskID === "b1"), {
      timeout: 10_000,
      message: "org B's task to start",
    });
    const aStartedBeforeB = driver.calls.filter(
      (c) => c.taskID.startsWith("a") && c.startedAt <= b.startedAt,
    );
    const aPending = QUEUED - aStartedBeforeB.length;

    expect(b.startedAt - submittedAt).toBeLessThan(2_000);
    expect(aPending).toBeGreaterThanOrEqual(150);
    expect(await theirs.result()).toMatchObject({ status: "completed", org: "globex" });

    // Meanwhile A keeps no more than its share of the worker, and B's one task took the free slot.
    await worker.stop();
    const aCalls = driver.calls.filter((c) => c.taskID.startsWith("a"));
    expect(aCalls.length).toBeLessThan(QUEUED);
    expect(peak(aCalls)).toBeLessThanOrEqual(PER_ORG);
    expect(peak(driver.calls)).toBeLessThanOrEqual(CONCURRENCY);
    const status = await acme.status();
    expect(status.tasks.messages).toBe(QUEUED - aCalls.length);
    expect(env.logs.filter((line) => /permission/i.test(line))).toEqual([]);
  });
});
