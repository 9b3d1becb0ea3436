import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { jetstream, jetstreamManager } from "@nats-io/jetstream";
import { NatsCluster, waitFor } from "@station-coding/testkit";
import { script } from "@station-coding/testkit/worker";
import type { Env } from "./support/env.js";
import { startEnv } from "./support/env.js";
import { account, waitForResults } from "./support/ledger.js";
import { recordRow, seconds } from "./support/scenario-row.js";

const QUEUED = 40;
const DURING_OUTAGE = 10;

let cluster: NatsCluster;
let env: Env;
beforeAll(async () => {
  cluster = await NatsCluster.start();
  env = await startEnv({ servers: cluster.urls, topology: { replicas: 3 } });
});
afterAll(async () => {
  await env?.close();
  await cluster?.stop();
});

describe("3 cluster leader failover", () => {
  it("loses and duplicates nothing when the task stream's leader node is killed mid-load and comes back", async (context) => {
    const started = Date.now();
    await env.startWorker({ concurrency: 4 });
    await env.startWorker({ concurrency: 4 });
    const js = jetstream(env.nc, { timeout: 2_000 });
    const jsm = await jetstreamManager(env.nc);
    const publish = (taskID: string) =>
      js.publish(
        env.names.taskSubject,
        JSON.stringify({ taskID, prompt: script({ text: "r3 " }, { sleep: 200 }, { text: "ok" }) }),
        { msgID: taskID },
      );
    const ids = Array.from({ length: QUEUED }, (_, i) => `r3-${i}`);
    for (const taskID of ids) await publish(taskID);

    await waitFor(() => env.wiretap.results.size >= 8, { timeout: 60_000, message: "8 tasks done" });
    const leaderName = (await jsm.streams.info(env.names.streams.tasks)).cluster?.leader;
    const leader = cluster.nodes.find((n) => n.serverName === leaderName);
    expect(leader, `the leader ${leaderName} is a node of the cluster`).toBeDefined();
    const doneAtKill = env.wiretap.results.size;
    const killAt = Date.now();
    await leader!.kill();

    // Submissions go on during the election: a publish is retried (same Nats-Msg-Id) until it is
    // stored; nats-server 2.9 waits 4-9 s before a follower campaigns.
    const late = Array.from({ length: DURING_OUTAGE }, (_, i) => `r3-late-${i}`);
    const firstStoredAfter = Date.now();
    let publishWait = 0;
    for (const taskID of late) {
      await waitFor(() => publish(taskID), { timeout: 30_000, interval: 250, message: `publish ${taskID}` });
      publishWait ||= Date.now() - firstStoredAfter;
    }
    const newLeader = await waitFor(
      async () => {
        const name = (await jsm.streams.info(env.names.streams.tasks)).cluster?.leader;
        return name && name !== leaderName ? name : undefined;
      },
      { timeout: 30_000, interval: 250, message: "a new task stream leader" },
    );

    await leader!.restart();
    await cluster.waitForReady({ timeout: 30_000 });
    const all = [...ids, ...late];
    await waitForResults(env, all, 120_000);
    const lastResultAt = Math.max(...all.map((id) => env.wiretap.results.get(id)?.[0]?.at ?? Date.now()));
    const acc = await account(env, all);
    const leaks = await env.secretLeaks();
    recordRow(context, {
      scenario: "3 3-node cluster, task stream leader killed",
      submitted: acc.submitted,
      completed: acc.completed,
      lost: acc.lost.length,
      duplicated: acc.duplicated.length,
      recovery: `${seconds(publishWait)} to accept tasks again, ${seconds(lastResultAt - killAt)} to the last result`,
      durationMs: Date.now() - started,
      figures: {
        "killed leader": `${leaderName} -> ${newLeader}`,
        "done at kill": doneAtKill,
        "submitted during outage": DURING_OUTAGE,
        "tasks run again": acc.rerun,
        "result re-sends": acc.resent,
        "tasks with event gaps": acc.eventGaps.length,
        "secret leaks": leaks.length,
      },
    });
    expect(acc.lost).toEqual([]);
    expect(acc.duplicated).toEqual([]);
    expect(acc.unexpected).toEqual([]);
    expect(acc.completed).toBe(all.length);
    expect(leaks).toEqual([]);
  });
});
