import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { jetstream } from "@nats-io/jetstream";
import { waitFor } from "@station-coding/testkit";
import { script } from "@station-coding/testkit/worker";
import type { Step } from "@station-coding/testkit/worker";
import type { ChildWorker, Env } from "./support/env.js";
import { startEnv } from "./support/env.js";
import { account, waitForResults } from "./support/ledger.js";
import { describeDurations, recordRow } from "./support/scenario-row.js";
import { randomGenerator, shuffle } from "./support/random.js";

/** Where a task's worker is killed, the first time the task gets there. */
type KillPoint = "none" | "before-start" | "mid-tool" | "after-result";

const TASKS = 20;
const WORKERS = 3;
const KILLS: KillPoint[] = [
  "before-start",
  "mid-tool",
  "after-result",
  "before-start",
  "mid-tool",
  "after-result",
  "mid-tool",
  "after-result",
];

let env: Env;
beforeAll(async () => {
  env = await startEnv();
});
afterAll(async () => {
  await env?.close();
});

describe("1 worker SIGKILL", () => {
  it("completes every task exactly once when workers are SIGKILLed at random points", async (context) => {
    const started = Date.now();
    const { seed, random } = randomGenerator();
    const points = new Map<string, KillPoint>();
    const ids = Array.from({ length: TASKS }, (_, i) => `crash-${i}`);
    const chosen = shuffle(ids, random).slice(0, KILLS.length);
    ids.forEach((id) => points.set(id, "none"));
    chosen.forEach((id, i) => points.set(id, KILLS[i]!));

    // A task can be in flight on several killed workers in a row (collateral): allow more runs than
    // the default 3, which the poison scenario covers.
    const options = { concurrency: 2, ackWait: 2_000, maxAttempts: 10 };
    const live = new Set<ChildWorker>();
    const spawned: Promise<unknown>[] = [];
    let stopping = false;
    /** Starts a worker and, like a supervisor, a new one whenever it dies. */
    const supervise = async (): Promise<void> => {
      const worker = await env.spawnWorker(options);
      live.add(worker);
      worker.child.once("exit", () => {
        live.delete(worker);
        onDeath(worker);
        if (!stopping) spawned.push(supervise());
      });
    };

    // Incidents: a worker died at `at`; the tasks it was running then must be resumed and completed
    // by other workers.
    interface Incident {
      at: number;
      workerID: string;
      cause: KillPoint;
      affected: string[];
      resumed: Map<string, number>;
    }
    const incidents: Incident[] = [];
    const runningOn = new Map<string, string>(); // taskID -> workerID of its latest run
    const done = new Set<string>();
    const killed = new Set<string>();
    const kills = new Map<ChildWorker, { at: number; cause: KillPoint }>();
    const onDeath = (worker: ChildWorker): void => {
      const affected = [...runningOn]
        .filter(([id, w]) => w === worker.workerID && !done.has(id))
        .map(([id]) => id);
      // A death nobody caused from outside is the driver's scripted crash between two tool calls.
      const { at, cause } = kills.get(worker) ?? { at: Date.now(), cause: "mid-tool" as const };
      incidents.push({ at, workerID: worker.workerID, cause, affected, resumed: new Map() });
    };
    const kill = (workerID: string | undefined, cause: KillPoint): void => {
      const worker = [...live].find((w) => w.workerID === workerID);
      // Keep a second worker alive: skip a kill that would leave none.
      if (!worker || live.size < 2) return;
      live.delete(worker);
      kills.set(worker, { at: Date.now(), cause });
      worker.child.kill("SIGKILL");
    };
    env.wiretap.on((kind, value) => {
      if (kind === "event" && "type" in value) {
        if (value.type !== "task_started" || !value.workerID) return;
        runningOn.set(value.taskID, value.workerID);
        for (const incident of incidents) {
          if (incident.affected.includes(value.taskID) && !incident.resumed.has(value.taskID)) {
            incident.resumed.set(value.taskID, value.at);
          }
        }
        if (points.get(value.taskID) === "before-start" && !killed.has(value.taskID)) {
          killed.add(value.taskID);
          kill(value.workerID, "before-start");
        }
      } else if (kind === "result" && "result" in value) {
        const taskID = value.result.taskID;
        done.add(taskID);
        if (points.get(taskID) === "after-result" && !killed.has(taskID)) {
          killed.add(taskID);
          kill(value.result.workerID, "after-result");
        }
      }
    });

    for (let i = 0; i < WORKERS; i += 1) await supervise();
    const js = jetstream(env.nc);
    for (const taskID of ids) {
      const steps: Step[] = [
        { text: `${taskID} start ` },
        { tool: { name: "bash", args: { command: "ls" } } },
      ];
      if (points.get(taskID) === "mid-tool") {
        // The driver SIGKILLs its own process between two tool calls, on the first run only.
        steps.push({ crash: true, onceFile: join(env.workspaceDir, `${taskID}.crashed`) });
      }
      steps.push({ sleep: 300 }, { tool: { name: "read" } }, { text: "end" });
      await js.publish(env.names.taskSubject, JSON.stringify({ taskID, prompt: script(...steps) }), {
        msgID: taskID,
      });
    }

    await waitForResults(env, ids, 120_000).catch((err: unknown) => {
      const plan = [...points].filter(([, p]) => p !== "none").map(([id, p]) => `${id}=${p}`);
      const why = err instanceof Error ? err.message : String(err);
      throw new Error(`RELIABILITY_SEED=${seed} (kill points ${plan.join(", ")}): ${why}`, { cause: err });
    });
    const resultAt = (id: string) => env.wiretap.results.get(id)?.[0]?.at ?? Date.now();
    stopping = true;
    await Promise.all(spawned);
    const acc = await account(env, ids);

    const hit = incidents.filter((i) => i.affected.length > 0);
    const resumedIn = hit.map(
      (i) => Math.max(...i.affected.map((id) => i.resumed.get(id) ?? Date.now())) - i.at,
    );
    const completedIn = hit.map((i) => Math.max(...i.affected.map(resultAt)) - i.at);
    const byCause = (cause: KillPoint) => incidents.filter((i) => i.cause === cause).length;
    const afterResult = ids.filter((id) => points.get(id) === "after-result");
    const beforeAck = afterResult.filter((id) => (env.wiretap.deliveries.get(id) ?? 0) > 1).length;
    const leaks = await env.secretLeaks();
    recordRow(context, {
      scenario: "1 worker SIGKILL at random points",
      submitted: acc.submitted,
      completed: acc.completed,
      lost: acc.lost.length,
      duplicated: acc.duplicated.length,
      recovery: `resumed ${describeDurations(resumedIn)}; completed ${describeDurations(completedIn)}`,
      durationMs: Date.now() - started,
      figures: {
        seed,
        "worker deaths": incidents.length,
        "deaths before-start/mid-tool/after-result": `${byCause("before-start")}/${byCause("mid-tool")}/${byCause("after-result")}`,
        "tasks caught in a death": new Set(hit.flatMap((i) => i.affected)).size,
        "after-result kills that beat the ack": `${beforeAck}/${afterResult.length}`,
        "tasks run again": acc.rerun,
        "result re-sends": acc.resent,
        "secret leaks": leaks.length,
      },
    });
    expect(acc.lost).toEqual([]);
    expect(acc.duplicated).toEqual([]);
    expect(acc.unexpected).toEqual([]);
    expect(acc.completed).toBe(TASKS);
    expect(incidents.length).toBeGreaterThanOrEqual(4);
    expect(leaks).toEqual([]);
    // Redelivery waits for the ack wait (2 s) and the lease to lapse: another worker resumes a task
    // within seconds (a task caught in a second death later takes longer to complete).
    expect(Math.max(0, ...resumedIn)).toBeLessThan(15_000);
    await waitFor(() => live.size >= 1, { message: "a worker alive at the end" });
  });
});
