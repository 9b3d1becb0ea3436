// 2. Throughput of no-op tasks with 1, 2 and 4 in-process workers on one nats-server, submits
// pipelined, against a raw JetStream work queue of the same shape (N pull consumers on one durable,
// each acking and publishing a core reply).
import type { CodingDispatcher } from "@station-coding/dispatcher";
import { BenchEnv, expectStatus, script, taskID } from "../bench-env.js";
import type { PullMode } from "../raw-queue.js";
import { RawWorkQueue } from "../raw-queue.js";
import type { Row, Scenario, ScenarioContext, ScenarioOutput } from "../scenario.js";
import { rateRow } from "../scenario.js";
import { now, summarize } from "../stats.js";
import { taskPayload } from "./round-trip.js";

/** Submits `count` no-op tasks at once and waits for every result; returns tasks per second. */
export async function systemBurst(
  dispatcher: CodingDispatcher,
  count: number,
  prefix = "tp",
): Promise<number> {
  const started = now();
  await Promise.all(
    Array.from({ length: count }, async () => {
      const handle = await dispatcher.submit({ taskID: taskID(prefix), prompt: script({ text: "ok" }) });
      expectStatus(await handle.result({ timeout: "120s" }));
    }),
  );
  return count / ((now() - started) / 1000);
}

/** Publishes `count` raw messages at once and waits for every reply; returns messages per second. */
async function rawBurst(raw: RawWorkQueue, count: number, payload: string): Promise<number> {
  const arrivals = await raw.burst(count, payload);
  return count / (arrivals[arrivals.length - 1]! / 1000);
}

export const throughput: Scenario = {
  id: "throughput",
  title: "2. Throughput, no-op tasks, pipelined",
  async run(ctx: ScenarioContext): Promise<ScenarioOutput> {
    const workerCounts = [1, 2, 4];
    const rounds = ctx.quick ? 1 : 3;
    const tasks = ctx.quick ? 8 : 60;
    // The raw queue is ~100x faster: more messages keep its timing well above timer noise.
    const rawMessages = ctx.quick ? 500 : 5_000;
    const payload = taskPayload(script({ text: "ok" }));
    const rows: Row[] = [];
    const nextVariant: Record<string, number> = {};
    const loopBusy: Record<string, number> = {};
    for (const workers of workerCounts) {
      await using env = await BenchEnv.start();
      const dispatcher = await env.dispatcher();
      for (let i = 0; i < workers; i += 1) await env.worker();
      const raw = await RawWorkQueue.create(await env.connect(), "tp");
      const consumers = await Promise.all(Array.from({ length: workers }, () => env.connect("raw-consumer")));
      const startRaw = async (mode: PullMode) => {
        await raw.stop();
        await raw.startConsumers(consumers, mode);
      };
      await startRaw("consume");
      await systemBurst(dispatcher, ctx.quick ? 2 : 20);
      await rawBurst(raw, 200, payload);

      const ours: number[] = [];
      const base: number[] = [];
      const busy: number[] = [];
      for (let round = 0; round < rounds; round += 1) {
        const pair = [
          async () => {
            // How much of the time the one event loop (workers + dispatcher) was busy.
            const before = performance.eventLoopUtilization();
            ours.push(await systemBurst(dispatcher, tasks));
            busy.push(performance.eventLoopUtilization(before).utilization);
          },
          async () => base.push(await rawBurst(raw, rawMessages, payload)),
        ];
        for (const run of round % 2 === 0 ? pair : pair.reverse()) await run();
      }
      // The worker pulls one message per free slot (`next()`); the same pattern, raw, shows what
      // that costs by itself.
      await startRaw("next");
      nextVariant[`${workers}`] = await rawBurst(raw, Math.min(rawMessages, 2_000), payload);
      await raw.stop();
      loopBusy[`${workers}`] = summarize(busy).p50;
      ctx.log(`${workers} worker(s): ${ours.map((x) => x.toFixed(0)).join(", ")} tasks/s`);
      rows.push(
        rateRow(
          `${workers} worker${workers > 1 ? "s" : ""} (concurrency 4 each)`,
          "tasks/s",
          summarize(ours),
          summarize(base),
          `raw work queue, ${workers} consumer${workers > 1 ? "s" : ""} (consume), ack + core reply`,
        ),
      );
    }
    return {
      rows,
      notes: [
        `Each run submits ${tasks} tasks at once and waits for all results (raw: ${rawMessages} messages); ${rounds} runs per case after a warm-up. Workers, dispatcher and raw clients share one Node process (one event loop) and one nats-server on 2 cores.`,
        `Raw consumers pulling one message per slot with next() (4 slots each, the worker's pattern): ${Object.entries(
          nextVariant,
        )
          .map(([n, rate]) => `${n} consumer(s) ${rate.toFixed(0)} msgs/s`)
          .join(", ")}.`,
        `Event loop utilization of the one process during the system runs (median): ${Object.entries(loopBusy)
          .map(([n, u]) => `${n} worker(s) ${(u * 100).toFixed(0)}%`)
          .join(", ")}: the in-process workers share one event loop, so adding workers adds no CPU.`,
      ],
      details: { rawNextPerSlotMsgsPerSecond: nextVariant, eventLoopUtilization: loopBusy },
    };
  },
};
