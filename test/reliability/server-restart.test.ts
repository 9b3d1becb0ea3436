import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { jetstream } from "@nats-io/jetstream";
import { waitFor } from "@station-coding/testkit";
import { script } from "@station-coding/testkit/worker";
import type { Env } from "./support/env.js";
import { startEnv } from "./support/env.js";
import { account, waitForResults } from "./support/ledger.js";
import { recordRow, seconds } from "./support/scenario-row.js";

const TASKS = 50;

let env: Env;
beforeAll(async () => {
  env = await startEnv();
});
afterAll(async () => {
  await env?.close();
});

describe("2 nats-server restart", () => {
  it("loses nothing when the server restarts, or crashes and restarts, mid-load (file storage)", async (context) => {
    const started = Date.now();
    await env.startWorker({ concurrency: 4 });
    await env.startWorker({ concurrency: 4 });
    const js = jetstream(env.nc);
    const ids = Array.from({ length: TASKS }, (_, i) => `restart-${i}`);
    for (const taskID of ids) {
      const prompt = script(
        { text: "before " },
        { sleep: 200 },
        { tool: { name: "bash" } },
        { text: "after" },
      );
      await js.publish(env.names.taskSubject, JSON.stringify({ taskID, prompt }), { msgID: taskID });
    }
    const server = env.server!;
    const firstResultAfter = async (at: number) => {
      const seen = () => [...env.wiretap.results.values()].some((list) => list.some((r) => r.at > at));
      await waitFor(seen, { timeout: 60_000, message: "a result after the restart" });
      return Date.now() - at;
    };
    // A clean restart (SIGTERM) once a fifth of the tasks are done, then a crash (SIGKILL, nothing
    // flushed) and restart at three fifths: the other tasks are running or queued each time.
    await waitFor(() => env.wiretap.results.size >= TASKS / 5, { timeout: 60_000, message: "20% done" });
    const doneAtRestart = env.wiretap.results.size;
    const restartAt = Date.now();
    await server.restart();
    const restartDown = Date.now() - restartAt;
    const restartResume = await firstResultAfter(restartAt);

    await waitFor(() => env.wiretap.results.size >= (TASKS * 3) / 5, {
      timeout: 60_000,
      message: "60% done",
    });
    const doneAtKill = env.wiretap.results.size;
    const killAt = Date.now();
    await server.kill();
    await server.restart();
    const killDown = Date.now() - killAt;
    const killResume = await firstResultAfter(killAt);
    await waitForResults(env, ids, 120_000);
    const acc = await account(env, ids);
    const leaks = await env.secretLeaks();
    recordRow(context, {
      scenario: "2 nats-server restart mid-load",
      submitted: acc.submitted,
      completed: acc.completed,
      lost: acc.lost.length,
      duplicated: acc.duplicated.length,
      recovery: `restart ${seconds(restartResume)}, kill ${seconds(killResume)} (to the first result after)`,
      durationMs: Date.now() - started,
      figures: {
        "done at restart/kill": `${doneAtRestart}/${doneAtKill}`,
        "server down restart/kill": `${restartDown}/${killDown} ms`,
        "tasks run again": acc.rerun,
        "result re-sends": acc.resent,
        "tasks with event gaps": acc.eventGaps.length,
        "secret leaks": leaks.length,
      },
    });
    expect(acc.lost).toEqual([]);
    expect(acc.duplicated).toEqual([]);
    expect(acc.unexpected).toEqual([]);
    expect(acc.completed).toBe(TASKS);
    expect(leaks).toEqual([]);
  });
});
