// 7. Worker memory: RSS of a worker in a child process (the worker tests' child entry, scripted
// driver), idle and with 1, 8 and 32 sleeping tasks in flight, against a bare NATS client child that
// holds the same number of unacked messages. Both children are started with `node --import tsx`.
import { setTimeout as delay } from "node:timers/promises";
import { fileURLToPath } from "node:url";
import type { NatsConnection } from "@nats-io/transport-node";
import type { CodingDispatcher } from "@station-coding/dispatcher";
import { waitFor } from "@station-coding/testkit";
import { BenchEnv, expectStatus, script, taskID } from "../bench-env.js";
import { TsChild } from "../child-process.js";
import { RawWorkQueue } from "../raw-queue.js";
import type { Row, Scenario, ScenarioContext, ScenarioOutput } from "../scenario.js";
import { summarize } from "../stats.js";

const WORKER_ENTRY = fileURLToPath(
  new URL("../../../packages/testkit/src/worker/worker-process.ts", import.meta.url),
);
const RAW_ENTRY = fileURLToPath(new URL("../raw-child.ts", import.meta.url));

interface Reading {
  idle: number[];
  busy: number[];
}

/** Counts `prompt_sent` events (a task is then inside the driver) of the tasks it is told about. */
function countStarted(nc: NatsConnection, prefix: string) {
  const ids = new Set<string>();
  const seen = new Set<string>();
  const sub = nc.subscribe(`${prefix}.*`, {
    callback: (_err, msg) => {
      const event = msg.json<{ taskID: string; type: string }>();
      if (event.type === "prompt_sent" && ids.has(event.taskID)) seen.add(event.taskID);
    },
  });
  return { ids, started: () => seen.size, stop: () => sub.unsubscribe() };
}

async function measureWorker(
  env: BenchEnv,
  dispatcher: CodingDispatcher,
  watcher: NatsConnection,
  concurrency: number,
  settle: number,
): Promise<Reading> {
  const options = env.workerOptions({ concurrency, workerID: `bench-mem-${concurrency}` });
  const child = TsChild.start(WORKER_ENTRY, JSON.stringify(options));
  try {
    await child.waitForLine((l) => l.startsWith("ready "), "worker ready");
    // One task first, so that every code path a task takes is loaded before "idle" is read.
    const warm = await dispatcher.submit({ taskID: taskID("mem-warm"), prompt: script({ text: "ok" }) });
    expectStatus(await warm.result({ timeout: "30s" }));
    await delay(settle);
    const idle = await child.sampleRss();
    const tracker = countStarted(watcher, dispatcher.names.streamPrefix);
    await watcher.flush();
    const handles = [];
    for (let i = 0; i < concurrency; i += 1) {
      const id = taskID("mem");
      tracker.ids.add(id);
      handles.push(await dispatcher.submit({ taskID: id, prompt: script({ sleep: 120_000 }) }));
    }
    await waitFor(() => tracker.started() === concurrency, {
      timeout: 60_000,
      message: `${concurrency} tasks in flight in the child worker`,
    });
    tracker.stop();
    await delay(settle);
    const busy = await child.sampleRss();
    await Promise.all(handles.map((h) => h.cancel("benchmark done")));
    await Promise.all(
      handles.map(async (h) => expectStatus(await h.result({ timeout: "30s" }), "cancelled")),
    );
    return { idle, busy };
  } finally {
    await child.stop();
  }
}

async function measureRaw(env: BenchEnv, slots: number, settle: number): Promise<Reading> {
  const client = await env.connect("raw-mem-client");
  const queue = await RawWorkQueue.create(client, `mem${slots}`);
  const child = TsChild.start(
    RAW_ENTRY,
    JSON.stringify({ servers: env.url, stream: queue.stream, consumer: "raw-workers", slots }),
  );
  try {
    await child.waitForLine((l) => l === "ready", "raw client ready");
    await queue.enqueue(1, "ack", 1);
    await delay(settle);
    const idle = await child.sampleRss();
    const inflight = child.waitForLine((l) => l === `inflight ${slots}`, `${slots} raw messages in flight`);
    await queue.enqueue(slots, "hold", 1);
    await inflight;
    await delay(settle);
    const busy = await child.sampleRss();
    return { idle, busy };
  } finally {
    await child.stop();
    queue.close();
  }
}

/** Per-task growth: each busy reading minus the median idle reading, over the tasks in flight. */
function perTaskKiB(r: Reading, tasks: number): number[] {
  const idle = summarize(r.idle).p50;
  return r.busy.map((b) => ((b - idle) * 1024) / tasks);
}

export const memory: Scenario = {
  id: "memory",
  title: "7. Worker memory (RSS, child process)",
  async run(ctx: ScenarioContext): Promise<ScenarioOutput> {
    const levels = ctx.quick ? [4] : [1, 8, 32];
    const settle = ctx.quick ? 500 : 1_500;
    await using env = await BenchEnv.start();
    const dispatcher = await env.dispatcher();
    const watcher = await env.connect("bench-mem-watch");
    const rows: Row[] = [];
    const idleOurs: number[] = [];
    const idleBase: number[] = [];
    const perTask: Row[] = [];
    const details: Record<string, unknown> = {};
    for (const level of levels) {
      const ours = await measureWorker(env, dispatcher, watcher, level, settle);
      const base = await measureRaw(env, level, settle);
      ctx.log(
        `concurrency ${level}: worker ${summarize(ours.idle).p50.toFixed(1)} -> ${summarize(ours.busy).p50.toFixed(1)} MiB, raw ${summarize(base.idle).p50.toFixed(1)} -> ${summarize(base.busy).p50.toFixed(1)} MiB`,
      );
      idleOurs.push(...ours.idle);
      idleBase.push(...base.idle);
      details[`concurrency${level}`] = { worker: ours, raw: base };
      perTask.push({
        case: `growth per in-flight task, concurrency ${level} (RSS ${summarize(ours.busy).p50.toFixed(0)} MiB vs ${summarize(base.busy).p50.toFixed(0)} MiB)`,
        unit: "KiB",
        better: "lower",
        ours: { summary: summarize(perTaskKiB(ours, level)), over: "rounds", each: "readings" },
        baseline: { summary: summarize(perTaskKiB(base, level)), over: "rounds", each: "readings" },
        baselineName: `bare NATS client child holding ${level} unacked message${level > 1 ? "s" : ""}`,
      });
    }
    rows.push({
      case: "idle RSS after one task",
      unit: "MiB",
      better: "lower",
      ours: { summary: summarize(idleOurs), over: "rounds", each: "readings" },
      baseline: { summary: summarize(idleBase), over: "rounds", each: "readings" },
      baselineName: "bare NATS client child with a pull consumer",
    });
    rows.push(...perTask);
    return {
      rows,
      notes: [
        `VmRSS from /proc/<pid>/status, 5 readings 200 ms apart after ${settle} ms of quiet; min–max over the readings (idle: over every child). A fresh child per concurrency level; the worker runs one no-op task before "idle" is read, then holds N tasks that sleep in the scripted driver (each with its workspace, lease, session lock, event publisher and timers). Both children load TypeScript through tsx, which is part of both idle figures. Growth per task at concurrency 1 is within V8's heap noise.`,
      ],
      details,
    };
  },
};
