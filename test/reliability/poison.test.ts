import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { jetstream } from "@nats-io/jetstream";
import { DeadLetters } from "@station-coding/protocol";
import { waitFor } from "@station-coding/testkit";
import { script } from "@station-coding/testkit/worker";
import type { ChildWorker, Env } from "./support/env.js";
import { startEnv } from "./support/env.js";
import { account, waitForResults } from "./support/ledger.js";
import { recordRow, seconds } from "./support/scenario-row.js";

const GOOD = 10;
const MAX_ATTEMPTS = 3;

let env: Env;
beforeAll(async () => {
  env = await startEnv();
});
afterAll(async () => {
  await env?.close();
});

describe("8 poison task", () => {
  it("dead-letters a task that crashes its worker on every delivery; the workers keep serving others", async (context) => {
    const started = Date.now();
    // One task per worker process: with more, the tasks that share a process with the poison lose
    // an attempt at each crash too and can be dead-lettered with it (see docs/reliability.md).
    const options = { concurrency: 1, ackWait: 1_500, maxAttempts: MAX_ATTEMPTS };
    const spawned: Promise<unknown>[] = [];
    const deaths: number[] = [];
    let stopping = false;
    const live = new Set<ChildWorker>();
    // A supervisor: a worker that dies is replaced (bounded: the poison can kill at most
    // MAX_ATTEMPTS workers, and collateral kills add a few).
    const supervise = async (): Promise<void> => {
      if (stopping || deaths.length > MAX_ATTEMPTS + 4) return;
      const worker = await env.spawnWorker(options);
      live.add(worker);
      worker.child.once("exit", () => {
        live.delete(worker);
        deaths.push(Date.now());
        spawned.push(supervise());
      });
    };
    await supervise();
    await supervise();

    const js = jetstream(env.nc);
    const publish = (taskID: string, prompt: string) =>
      js.publish(env.names.taskSubject, JSON.stringify({ taskID, prompt }), { msgID: taskID });
    const poisonAt = Date.now();
    await publish("poison", script({ text: "about to crash" }, { crash: true }));
    const good = Array.from({ length: GOOD }, (_, i) => `good-${i}`);
    for (const taskID of good) await publish(taskID, script({ sleep: 300 }, { text: "fine" }));

    await waitForResults(env, ["poison", ...good], 90_000);
    const deadAt = env.wiretap.results.get("poison")?.[0]?.at ?? Date.now();
    // After the poison is dead, the surviving workers still take new work.
    await publish("after-poison", script({ text: "still serving" }));
    await waitForResults(env, ["after-poison"], 30_000);
    stopping = true;
    await Promise.all(spawned);

    const all = ["poison", ...good, "after-poison"];
    const acc = await account(env, all, { expected: (id) => (id === "poison" ? "error" : "completed") });
    const letters = await new DeadLetters(env.nc, env.names).list();
    const poison = acc.results.get("poison");
    const leaks = await env.secretLeaks();
    recordRow(context, {
      scenario: "8 poison task (crashes every worker)",
      submitted: acc.submitted,
      completed: acc.completed,
      lost: acc.lost.length,
      duplicated: acc.duplicated.length,
      recovery: `${seconds(deadAt - poisonAt)} from publish to dead letter`,
      durationMs: Date.now() - started,
      figures: {
        "worker deaths": deaths.length,
        "poison result": `${poison?.status}/${poison?.errorCode}`,
        "dead letters": letters.map((l) => `${l.taskID}x${l.attempts}`).join(","),
        "secret leaks": leaks.length,
      },
    });
    expect(acc.lost).toEqual([]);
    expect(acc.duplicated).toEqual([]);
    expect(acc.unexpected).toEqual([]);
    expect(poison?.errorCode).toBe("RETRIES_EXHAUSTED");
    expect(poison?.error).toContain(`gave up after ${MAX_ATTEMPTS} attempts`);
    expect(letters.map((l) => [l.taskID, l.attempts])).toEqual([["poison", MAX_ATTEMPTS]]);
    expect(deaths.length).toBeGreaterThanOrEqual(MAX_ATTEMPTS);
    expect(leaks).toEqual([]);
    await waitFor(async () => (await env.lookups.deadLetter("poison")) !== undefined, {
      message: "dead letter",
    });
  });
});
