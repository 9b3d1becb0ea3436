// 2b. Throughput of no-op tasks with 1, 2 and 4 worker *processes* (the worker tests' child entry,
// scripted driver, concurrency 4 each) on one nats-server, submits pipelined from this process,
// against a raw JetStream work queue with as many consumer processes (each acking and publishing a
// core reply). Shows whether more worker processes scale where in-process workers cannot (they
// share one event loop: scenario 2).
import { fileURLToPath } from "node:url";
import { BenchEnv, script } from "../bench-env.js";
import { TsChild } from "../child-process.js";
import { RawWorkQueue } from "../raw-queue.js";
import type { Row, Scenario, ScenarioContext, ScenarioOutput } from "../scenario.js";
import { rateRow } from "../scenario.js";
import { summarize } from "../stats.js";
import { taskPayload } from "./round-trip.js";
import { systemBurst } from "./throughput.js";

const WORKER_ENTRY = fileURLToPath(
  new URL("../../../packages/testkit/src/worker/worker-process.ts", import.meta.url),
);
const RAW_ENTRY = fileURLToPath(new URL("../raw-consumer-child.ts", import.meta.url));

/** Publishes `count` raw messages at once and waits for every reply; returns messages per second. */
async function rawBurst(raw: RawWorkQueue, count: number, payload: string): Promise<number> {
  const arrivals = await raw.burst(count, payload);
  return count / (arrivals[arrivals.length - 1]! / 1000);
}

export const processes: Scenario = {
  id: "processes",
  title: "2b. Throughput, no-op tasks, worker processes",
  async run(ctx: ScenarioContext): Promise<ScenarioOutput> {
    const counts = ctx.quick ? [1, 2] : [1, 2, 4];
    const rounds = ctx.quick ? 1 : 3;
    const tasks = ctx.quick ? 8 : 120;
    const rawMessages = ctx.quick ? 500 : 5_000;
    const payload = taskPayload(script({ text: "ok" }));
    const rows: Row[] = [];
    for (const n of counts) {
      await using env = await BenchEnv.start();
      const dispatcher = await env.dispatcher();
      const children: TsChild[] = [];
      env.defer(async () => {
        await Promise.all(children.map((c) => c.stop()));
      });
      const workers = Array.from({ length: n }, (_, i) =>
        TsChild.start(
          WORKER_ENTRY,
          JSON.stringify(
            env.workerOptions({ concurrency: 4, workerID: `bench-proc-${n}-${i}`, logLevel: "warn" }),
          ),
        ),
      );
      children.push(...workers);
      await Promise.all(
        workers.map((w) => w.waitForLine((l) => l.startsWith("ready "), "worker ready", 60_000)),
      );
      const raw = await RawWorkQueue.create(await env.connect(), `proc${n}`);
      env.defer(async () => raw.close());
      const consumers = Array.from({ length: n }, () =>
        TsChild.start(
          RAW_ENTRY,
          JSON.stringify({
            servers: env.url,
            stream: raw.stream,
            consumer: "raw-workers",
            replyPrefix: raw.replyPrefix,
          }),
        ),
      );
      children.push(...consumers);
      await Promise.all(consumers.map((c) => c.waitForLine((l) => l === "ready", "raw consumer ready")));
      // Warm-up: every code path loaded in every process.
      await systemBurst(dispatcher, ctx.quick ? 2 * n : 10 * n, "proc-warm");
      await rawBurst(raw, 200, payload);

      const ours: number[] = [];
      const base: number[] = [];
      for (let round = 0; round < rounds; round += 1) {
        const pair = [
          async () => ours.push(await systemBurst(dispatcher, tasks, "proc")),
          async () => base.push(await rawBurst(raw, rawMessages, payload)),
        ];
        for (const run of round % 2 === 0 ? pair : pair.reverse()) await run();
      }
      ctx.log(`${n} worker process(es): ${ours.map((x) => x.toFixed(0)).join(", ")} tasks/s`);
      rows.push(
        rateRow(
          `${n} worker process${n > 1 ? "es" : ""} (concurrency 4 each)`,
          "tasks/s",
          summarize(ours),
          summarize(base),
          `raw work queue, ${n} consumer process${n > 1 ? "es" : ""} (consume), ack + core reply`,
        ),
      );
    }
    return {
      rows,
      notes: [
        `Each run submits ${tasks} tasks at once from the benchmark process (one dispatcher) and waits for all results (raw: ${rawMessages} messages from one client); ${rounds} runs per case after a warm-up. Each worker and each raw consumer is its own Node process (node --import tsx); all share one nats-server and the machine's cores with the submitting process.`,
      ],
    };
  },
};
