import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { jetstream, jetstreamManager } from "@nats-io/jetstream";
import { Kvm } from "@nats-io/kv";
import type { WorkerOptions } from "@station-coding/worker";
import { DEFAULT_ACK_WAIT_MS, TaskLease, decodeEntry, ensureTaskConsumer } from "@station-coding/protocol";
import { waitFor } from "@station-coding/testkit";
import { script } from "@station-coding/testkit/worker";
import type { ChildWorker, Env } from "./support/env.js";
import { startEnv } from "./support/env.js";
import { account, waitForResults } from "./support/ledger.js";
import { recordRow, seconds } from "./support/scenario-row.js";

/** The acceptance figure: a dead worker's task starts again within this long. */
const RECOVERY_BOUND_MS = 10_000;

/**
 * The suite's shared worker options shorten every lease, delay and poll; these put the worker's own
 * defaults back (JSON leaves undefined out of the child's options), as a user runs it.
 */
const DEFAULTS: Partial<WorkerOptions> = {
  ackWait: undefined,
  retryDelay: undefined,
  sessionBusyDelay: undefined,
  pullExpires: undefined,
  heartbeatInterval: undefined,
  shutdownGrace: undefined,
  abortGrace: undefined,
};

let env: Env;
beforeAll(async () => {
  env = await startEnv();
  // An existing deployment, made before the short default: its consumer has the old 30 s ack_wait.
  await ensureTaskConsumer(env.nc, env.names, { ackWait: 30_000 });
});
afterAll(async () => {
  await env?.close();
});

/** The stored lease of a task. */
async function leaseOf(taskID: string): Promise<TaskLease | undefined> {
  const kv = await new Kvm(env.nc).open(env.names.kv.leases);
  return decodeEntry(await kv.get(`task.${taskID}`), TaskLease)?.value;
}

/** `task_started` events of a task seen on the wiretap, in order: who ran each attempt, and when. */
function startsOf(taskID: string): { workerID: string; at: number }[] {
  return starts.filter((s) => s.taskID === taskID);
}
const starts: { taskID: string; workerID: string; at: number }[] = [];

/** Publishes a task whose first run sleeps a minute (later runs skip the sleep). */
async function publishLongFirstRun(taskID: string): Promise<void> {
  const prompt = script(
    { text: `${taskID} start ` },
    { tool: { name: "bash", args: { command: "ls" } } },
    { sleep: 60_000, onceFile: join(env.workspaceDir, `${taskID}.slept`) },
    { text: "end" },
  );
  await jetstream(env.nc).publish(env.names.taskSubject, JSON.stringify({ taskID, prompt }), {
    msgID: taskID,
  });
}

/** Waits for the first run of a task and says which of `workers` runs it. */
async function firstRunner(taskID: string, workers: ChildWorker[]): Promise<ChildWorker> {
  const first = await waitFor(() => startsOf(taskID)[0], { timeout: 30_000, message: `${taskID} to start` });
  const worker = workers.find((w) => w.workerID === first.workerID);
  if (!worker) throw new Error(`${taskID} started on an unknown worker ${first.workerID}`);
  return worker;
}

describe("9 recovery with the default settings", () => {
  it("starts the task of a SIGKILLed worker again on another worker within 10 s, and a paused one that comes back publishes nothing", async (context) => {
    const started = Date.now();
    env.wiretap.on((kind, value) => {
      if (kind === "event" && "type" in value && value.type === "task_started" && value.workerID) {
        starts.push({ taskID: value.taskID, workerID: value.workerID, at: value.at });
      }
    });
    const workers = [
      await env.spawnWorker(DEFAULTS),
      await env.spawnWorker(DEFAULTS),
      await env.spawnWorker(DEFAULTS),
    ];
    // The workers brought the existing consumer to the new default (a consumer update, not a new one).
    const consumer = await (
      await jetstreamManager(env.nc)
    ).consumers.info(env.names.streams.tasks, env.names.consumer);
    expect(consumer.config.ack_wait).toBe(DEFAULT_ACK_WAIT_MS * 1_000_000);

    // SIGKILL: the task's next attempt starts on another worker within the bound.
    await publishLongFirstRun("killed");
    const victim = await firstRunner("killed", workers);
    // Let the run hold its lease through a few renewals first: a run that just started would
    // measure less than a worker that dies late in a long task.
    await waitFor(
      async () =>
        ((await leaseOf("killed"))?.expiresAt ?? 0) > startsOf("killed")[0]!.at + DEFAULT_ACK_WAIT_MS,
      {
        timeout: 15_000,
        message: "the first run's lease to be renewed",
      },
    );
    const killedAt = Date.now();
    await victim.kill();
    const restart = await waitFor(() => startsOf("killed")[1], {
      timeout: 60_000,
      message: "a second attempt of killed",
    });
    const lease = await waitFor(
      async () => {
        const current = await leaseOf("killed");
        return current?.attempts === 2 ? current : undefined;
      },
      { message: "the second attempt's lease" },
    );
    const killRecovery = restart.at - killedAt;
    const leaseRecovery = Date.parse(lease.startedAt ?? "") - killedAt;
    await waitForResults(env, ["killed"], 30_000);
    const killCompleted = (env.wiretap.results.get("killed")?.[0]?.at ?? Date.now()) - killedAt;

    // SIGSTOP: another worker takes over within the bound; the paused one, resumed, finds its
    // lease gone and publishes nothing.
    const alive = workers.filter((w) => w !== victim);
    await publishLongFirstRun("paused");
    const sleeper = await firstRunner("paused", alive);
    await waitFor(
      async () =>
        ((await leaseOf("paused"))?.expiresAt ?? 0) > startsOf("paused")[0]!.at + DEFAULT_ACK_WAIT_MS,
      {
        timeout: 15_000,
        message: "the first run's lease to be renewed",
      },
    );
    const pausedAt = Date.now();
    sleeper.child.kill("SIGSTOP");
    let pauseRecovery = 0;
    try {
      const takeover = await waitFor(() => startsOf("paused")[1], {
        timeout: 60_000,
        message: "a second attempt of paused",
      });
      pauseRecovery = takeover.at - pausedAt;
      await waitForResults(env, ["paused"], 30_000);
    } finally {
      sleeper.child.kill("SIGCONT");
    }
    await waitFor(() => /lost the lease/.test(sleeper.output), {
      timeout: 20_000,
      message: "the resumed worker to find its lease gone",
    });
    const acc = await account(env, ["killed", "paused"]);
    const leaks = await env.secretLeaks();
    recordRow(context, {
      scenario: "9 recovery with the default settings (ack_wait 5 s)",
      submitted: acc.submitted,
      completed: acc.completed,
      lost: acc.lost.length,
      duplicated: acc.duplicated.length,
      recovery: `SIGKILL to next attempt ${seconds(killRecovery)} (its lease ${seconds(leaseRecovery)}), to its result ${seconds(killCompleted)}; SIGSTOP to takeover ${seconds(pauseRecovery)}`,
      durationMs: Date.now() - started,
      figures: {
        "consumer ack_wait": `${(consumer.config.ack_wait ?? 0) / 1e9} s (updated from 30 s)`,
        "result messages": acc.resultMessages,
        "tasks run again": acc.rerun,
        "secret leaks": leaks.length,
      },
    });
    expect(killRecovery).toBeLessThan(RECOVERY_BOUND_MS);
    expect(leaseRecovery).toBeLessThan(RECOVERY_BOUND_MS);
    expect(pauseRecovery).toBeLessThan(RECOVERY_BOUND_MS);
    expect(startsOf("killed").map((s) => s.workerID)[1]).not.toBe(victim.workerID);
    expect(startsOf("paused").map((s) => s.workerID)[1]).not.toBe(sleeper.workerID);
    expect(acc.lost).toEqual([]);
    expect(acc.duplicated).toEqual([]);
    expect(acc.completed).toBe(2);
    expect(acc.resultMessages).toBe(2);
    expect(acc.results.get("paused")?.workerID).not.toBe(sleeper.workerID);
    expect(env.wiretap.results.get("paused")?.every((r) => r.result?.workerID !== sleeper.workerID)).toBe(
      true,
    );
    expect(leaks).toEqual([]);
  });
});
