// 3. Event streaming: events per second delivered in order to `handle.events()` for one chatty task
// (the scripted driver emits N text deltas at once), against raw JetStream publishing of the same
// payloads (256 in flight, like the worker's event publisher) read by an ordered consumer.
import {
  DeliverPolicy,
  DiscardPolicy,
  RetentionPolicy,
  StorageType,
  jetstream,
  jetstreamManager,
} from "@nats-io/jetstream";
import type { CodingDispatcher } from "@station-coding/dispatcher";
import { BenchEnv, expectStatus, script, taskID, within } from "../bench-env.js";
import type { Scenario, ScenarioContext, ScenarioOutput } from "../scenario.js";
import { rateRow } from "../scenario.js";
import { now, summarize } from "../stats.js";

const TEXT = "lorem ipsum dolo";

/** One chatty task through the system; returns text events per second as the reader saw them. */
async function systemStream(dispatcher: CodingDispatcher, count: number): Promise<number> {
  const handle = await dispatcher.submit({
    taskID: taskID("ev"),
    prompt: script({ deltas: { count, text: TEXT } }),
  });
  let first = 0;
  let last = 0;
  let texts = 0;
  let previous = 0;
  for await (const event of handle.events()) {
    if (event.seq !== previous + 1) {
      throw new Error(
        `task ${handle.taskID}: event seq ${event.seq} after ${previous}: out of order or missing`,
      );
    }
    previous = event.seq;
    if (event.type === "text") {
      texts += 1;
      if (texts === 1) first = now();
      last = now();
    }
  }
  expectStatus(await handle.result());
  if (texts !== count) throw new Error(`task ${handle.taskID}: ${texts} text events, expected ${count}`);
  return (count - 1) / ((last - first) / 1000);
}

/** The same payloads published raw and read by an ordered consumer; returns events per second. */
async function rawStream(env: BenchEnv, count: number, stream: string): Promise<number> {
  const nc = await env.connect("raw-events");
  const js = jetstream(nc);
  const id = taskID("raw-ev");
  const subject = `raw.events.${id}`;
  const consumer = await js.consumers.get(stream, {
    filter_subjects: subject,
    deliver_policy: DeliverPolicy.All,
  });
  let first = 0;
  let last = 0;
  let seen = 0;
  let failure: Error | undefined;
  let done: () => void = () => undefined;
  const finished = new Promise<void>((resolve) => (done = resolve));
  const messages = await consumer.consume({
    max_messages: 256,
    callback: (msg) => {
      const { seq } = msg.json<{ seq: number }>();
      if (seq !== seen + 1) failure ??= new Error(`raw event seq ${seq} after ${seen}: out of order`);
      seen = seq;
      if (seq === 1) first = now();
      last = now();
      if (seq === count) done();
    },
  });
  const publisher = jetstream(await env.connect("raw-events-publisher"));
  const timestamp = new Date().toISOString();
  let next = 1;
  const lanes = Array.from({ length: 256 }, async () => {
    while (next <= count) {
      const seq = next++;
      const event = { type: "text", content: TEXT, taskID: id, seq, timestamp, workerID: "raw", attempt: 1 };
      await publisher.publish(subject, JSON.stringify(event));
    }
  });
  await Promise.all(lanes);
  await within(30_000, "raw ordered consumer", finished);
  await messages.close();
  if (failure) throw failure;
  return (count - 1) / ((last - first) / 1000);
}

export const eventStreaming: Scenario = {
  id: "events",
  title: "3. Event streaming to handle.events()",
  async run(ctx: ScenarioContext): Promise<ScenarioOutput> {
    const count = ctx.quick ? 1_000 : 10_000;
    const rounds = ctx.quick ? 1 : 3;
    await using env = await BenchEnv.start();
    const dispatcher = await env.dispatcher();
    // coalesceMs 0: every delta becomes its own event, so this measures raw event throughput.
    await env.worker({ coalesceMs: 0 });
    const jsm = await jetstreamManager(await env.connect());
    const stream = "RAW_EVENTS";
    await jsm.streams.add({
      name: stream,
      subjects: ["raw.events.*"],
      retention: RetentionPolicy.Limits,
      storage: StorageType.File,
      discard: DiscardPolicy.Old,
    });
    await systemStream(dispatcher, 200);
    await rawStream(env, 200, stream);
    const ours: number[] = [];
    const base: number[] = [];
    for (let round = 0; round < rounds; round += 1) {
      const pair = [
        async () => ours.push(await systemStream(dispatcher, count)),
        async () => base.push(await rawStream(env, count, stream)),
      ];
      for (const run of round % 2 === 0 ? pair : pair.reverse()) await run();
    }
    return {
      rows: [
        rateRow(
          `${count.toLocaleString("en-US")} text deltas, one task, coalesceMs 0`,
          "events/s",
          summarize(ours),
          summarize(base),
          "raw JetStream publish (256 in flight) -> ordered consumer",
        ),
      ],
      notes: [
        `Rate = (N-1) / (time between the first and the last text event the reader got), every event checked for seq order. The worker's text coalescing (coalesceMs, default 100) is turned off here, so each delta is one event and one JetStream publish with a Nats-Msg-Id; with the default, deltas emitted within 100 ms become one event. The raw publisher sends the same JSON without a message id.`,
      ],
    };
  },
};
