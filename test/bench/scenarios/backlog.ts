// 6. Cost growth with a backlog: does the per-task cost stay flat when 1,000 or 10,000 no-op tasks
// are already queued?
//
// Each backlog lives in its own namespace (an org: its own task stream and task consumer) on one
// nats-server, next to a small one of 100 tasks. Namespaces without a running worker just hold
// their queue. The drain windows then take turns: 2 workers of one namespace start, run the next
// `window` tasks of its backlog (timed by result arrivals), and stop; before each window the
// backlog is topped up so that it stays N deep. Taking turns, on one server, keeps the machine's
// drift out of the comparison. Draining all of 10,000 tasks would take many minutes at the
// measured rate, and is not needed to see whether depth costs anything.
//
// Baselines from the same run: raw work queues with the same backlogs drained the same way
// (2 consumers pulling one message per slot, like the worker); raw publishes for queueing; and, for
// a probe task's round trip in yet another namespace, the same probe before the backlogs existed.
import { setTimeout as delay } from "node:timers/promises";
import type { CodingDispatcher } from "@station-coding/dispatcher";
import { BenchEnv, expectStatus, pool, script, taskID, within } from "../bench-env.js";
import { RawWorkQueue } from "../raw-queue.js";
import type { Row, Scenario, ScenarioContext, ScenarioOutput } from "../scenario.js";
import { latencyRow, rateRow } from "../scenario.js";
import { now, summarize } from "../stats.js";
import { taskPayload } from "./round-trip.js";

async function probeRoundTrips(dispatcher: CodingDispatcher, count: number): Promise<number[]> {
  const out: number[] = [];
  for (let i = 0; i < count; i += 1) {
    const started = now();
    const handle = await dispatcher.submit({ taskID: taskID("probe"), prompt: script({ text: "ok" }) });
    expectStatus(await handle.result({ timeout: "30s" }));
    out.push(now() - started);
  }
  return out;
}

/** Queues `count` no-op tasks, 256 submits in flight; returns tasks per second. */
async function queueTasks(dispatcher: CodingDispatcher, count: number): Promise<number> {
  const started = now();
  const ids = Array.from({ length: count }, () => taskID("bl"));
  await pool(ids, 256, async (id) => {
    await dispatcher.submit({ taskID: id, prompt: script({ text: "ok" }) });
  });
  return count / ((now() - started) / 1000);
}

/** Rate from the first to the last of `times` (ms). */
function rateOf(times: readonly number[]): number {
  return (times.length - 1) / ((times[times.length - 1]! - times[0]!) / 1000);
}

/** One backlog: a namespace with N queued tasks, and a raw queue with N queued messages. */
interface Level {
  depth: number;
  label: string;
  dispatcher: CodingDispatcher;
  raw: RawWorkQueue;
  /** Result arrival times of the running window, or undefined between windows. */
  arrivals: number[] | undefined;
  onWindowFull: () => void;
  queueRate: number;
  rawQueueRate: number;
  drain: number[];
  rawDrain: number[];
}

export const backlog: Scenario = {
  id: "backlog",
  title: "6. Cost growth with a queued backlog",
  async run(ctx: ScenarioContext): Promise<ScenarioOutput> {
    const depths = ctx.quick ? [50, 500] : [100, 1_000, 10_000];
    const rounds = ctx.quick ? 1 : 3;
    const window = ctx.quick ? 12 : 40;
    const rawWindow = ctx.quick ? 50 : 200;
    const probes = ctx.quick ? 3 : 20;
    const payload = taskPayload(script({ text: "ok" }));
    await using env = await BenchEnv.start();
    const client = await env.connect("bench-backlog");
    const rawConsumers = [await env.connect("raw-c1"), await env.connect("raw-c2")];

    const probe = await env.dispatcher({ org: "probe" });
    await env.worker({ orgs: ["probe"] });
    await probeRoundTrips(probe, ctx.quick ? 1 : 3);
    const before = await probeRoundTrips(probe, probes);

    const levels: Level[] = [];
    for (const [i, depth] of depths.entries()) {
      const org = `backlog${i}`;
      const dispatcher = await env.dispatcher({ org });
      const raw = await RawWorkQueue.create(client, org);
      const rawStart = now();
      await raw.enqueue(depth, payload);
      const rawQueueRate = depth / ((now() - rawStart) / 1000);
      const level: Level = {
        depth,
        label: depth.toLocaleString("en-US"),
        dispatcher,
        raw,
        arrivals: undefined,
        onWindowFull: () => undefined,
        queueRate: await queueTasks(dispatcher, depth),
        rawQueueRate,
        drain: [],
        rawDrain: [],
      };
      client.subscribe(`${dispatcher.names.resultPrefix}.*`, {
        callback: () => {
          if (!level.arrivals) return;
          level.arrivals.push(now());
          if (level.arrivals.length === window) level.onWindowFull();
        },
      });
      levels.push(level);
      ctx.log(`${level.label} queued in ${org} (${level.queueRate.toFixed(0)} tasks/s)`);
    }
    await client.flush();
    // Let the server settle after queueing, so the probe sees the backlog, not the tail of queueing it.
    await delay(ctx.quick ? 500 : 3_000);
    const during = await probeRoundTrips(probe, probes);

    for (let round = 0; round < rounds; round += 1) {
      for (const level of round % 2 === 0 ? levels : [...levels].reverse()) {
        const org = level.dispatcher.names.org!;
        // Top up first, so that the queue is N deep when the window starts.
        await queueTasks(level.dispatcher, window);
        level.arrivals = [];
        const full = new Promise<void>((resolve) => (level.onWindowFull = resolve));
        await Promise.all([env.worker({ orgs: [org] }), env.worker({ orgs: [org] })]);
        await within(120_000, `${window} tasks of the ${level.label} backlog`, full);
        level.drain.push(rateOf(level.arrivals));
        level.arrivals = undefined;
        // Stops the probe namespace's worker too after the first window; the probe is done by then.
        await env.stopWorkers();

        await level.raw.enqueue(rawWindow, payload);
        const drained = level.raw.expect(rawWindow);
        await level.raw.startConsumers(rawConsumers, "next");
        await within(60_000, `raw drain of the ${level.label} backlog`, drained);
        level.rawDrain.push(rateOf(level.raw.replyTimes));
        await level.raw.stop();
      }
      ctx.log(
        `round ${round + 1}/${rounds}: ${levels.map((l) => `${l.label} ${l.drain.at(-1)?.toFixed(1)}/s`).join(", ")}`,
      );
    }

    const rows: Row[] = [];
    for (const level of levels) {
      rows.push(
        rateRow(
          `drain with ${level.label} queued (2 workers, ${window} tasks per run)`,
          "tasks/s",
          summarize(level.drain),
          summarize(level.rawDrain),
          `raw work queue with ${level.label} queued, 2 consumers, next() per slot, ${rawWindow} per run`,
        ),
      );
    }
    for (const level of levels) {
      rows.push(
        rateRow(
          `queue ${level.label} tasks (submit, 256 in flight)`,
          "tasks/s",
          summarize([level.queueRate]),
          summarize([level.rawQueueRate]),
          "raw JetStream publish, 256 in flight",
        ),
      );
    }
    const total = depths.reduce((sum, d) => sum + d, 0).toLocaleString("en-US");
    rows.push(
      latencyRow(
        `probe round trip in another namespace, ${total} tasks queued on the server`,
        summarize(during),
        summarize(before),
        "the same probe before anything was queued",
      ),
    );
    return {
      rows,
      notes: [
        `Each backlog is its own namespace (org) on one nats-server; their drain runs take turns (${rounds} rounds, order alternating), each topped up to N first, so the queue is N deep whenever it is measured. Drain rate = (tasks - 1) / (first to last result of the run). The probe namespace has its own worker and measures ${probes} one-at-a-time round trips before and after the backlogs were queued (after a short pause once the ${total} tasks were queued).`,
      ],
      details: Object.fromEntries(
        levels.map((l) => [
          `backlog${l.depth}`,
          { drain: l.drain, rawDrain: l.rawDrain, queueRate: l.queueRate, rawQueueRate: l.rawQueueRate },
        ]),
      ),
    };
  },
};
