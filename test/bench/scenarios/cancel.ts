// 8. Cancel latency: from handle.cancel() to the `cancelled` result, for a scripted task that is
// sleeping in the driver, against the same message path done raw: a JetStream publish of the cancel
// request, delivered to the "worker" by a core subscription, which publishes a result to a stream
// that the client reads with a core subscription.
import { DiscardPolicy, RetentionPolicy, StorageType, jetstream, jetstreamManager } from "@nats-io/jetstream";
import type { NatsConnection } from "@nats-io/transport-node";
import type { CodingDispatcher } from "@station-coding/dispatcher";
import { BenchEnv, expectStatus, script, taskID, within } from "../bench-env.js";
import type { Scenario, ScenarioContext, ScenarioOutput } from "../scenario.js";
import { latencyRow } from "../scenario.js";
import { now, summarize } from "../stats.js";

/** Waits until the task's `prompt_sent` event is published: the driver is then sleeping. */
function promptSent(nc: NatsConnection, subject: string): Promise<void> {
  return new Promise((resolve) => {
    const sub = nc.subscribe(subject, {
      callback: (_err, msg) => {
        if (msg.json<{ type: string }>().type === "prompt_sent") {
          sub.unsubscribe();
          resolve();
        }
      },
    });
  });
}

async function systemCancel(dispatcher: CodingDispatcher, watcher: NatsConnection): Promise<number> {
  const id = taskID("cancel");
  const running = promptSent(watcher, dispatcher.names.streamSubject(id));
  await watcher.flush();
  const handle = await dispatcher.submit({ taskID: id, prompt: script({ sleep: 60_000 }) });
  await within(30_000, `task ${id} to start`, running);
  const started = now();
  await handle.cancel("benchmark");
  expectStatus(await handle.result({ timeout: "30s" }), "cancelled");
  return now() - started;
}

/** The raw path: the "worker" gets cancels by core subscription and stores a result. */
class RawCancel {
  private constructor(
    private readonly client: NatsConnection,
    private readonly clientJs: ReturnType<typeof jetstream>,
  ) {}

  static async create(env: BenchEnv): Promise<RawCancel> {
    const client = await env.connect("raw-cancel-client");
    const worker = await env.connect("raw-cancel-worker");
    const jsm = await jetstreamManager(client);
    for (const [name, subject] of [
      ["RAW_CANCELS", "raw.cancel.*"],
      ["RAW_RESULTS", "raw.result.*"],
    ] as const) {
      await jsm.streams.add({
        name,
        subjects: [subject],
        retention: RetentionPolicy.Limits,
        storage: StorageType.File,
        discard: DiscardPolicy.Old,
        max_msgs_per_subject: 1,
      });
    }
    const workerJs = jetstream(worker);
    worker.subscribe("raw.cancel.*", {
      callback: (_err, msg) => {
        const id = msg.subject.slice("raw.cancel.".length);
        void workerJs.publish(`raw.result.${id}`, JSON.stringify({ taskID: id, status: "cancelled" }));
      },
    });
    await worker.flush();
    return new RawCancel(client, jetstream(client));
  }

  async once(): Promise<number> {
    const id = taskID("raw-cancel");
    const result = new Promise<void>((resolve) => {
      const sub = this.client.subscribe(`raw.result.${id}`, {
        callback: () => {
          sub.unsubscribe();
          resolve();
        },
      });
    });
    await this.client.flush();
    const started = now();
    await this.clientJs.publish(`raw.cancel.${id}`, JSON.stringify({ taskID: id, reason: "benchmark" }));
    await result;
    return now() - started;
  }
}

export const cancel: Scenario = {
  id: "cancel",
  title: "8. Cancel latency",
  async run(ctx: ScenarioContext): Promise<ScenarioOutput> {
    const samples = ctx.quick ? 5 : 40;
    await using env = await BenchEnv.start();
    const dispatcher = await env.dispatcher();
    await env.worker();
    const watcher = await env.connect("bench-watch");
    const raw = await RawCancel.create(env);
    for (let i = 0; i < 2; i += 1) {
      await systemCancel(dispatcher, watcher);
      await raw.once();
    }
    const ours: number[] = [];
    const base: number[] = [];
    for (let i = 0; i < samples; i += 1) {
      const pair = [
        async () => ours.push(await systemCancel(dispatcher, watcher)),
        async () => base.push(await raw.once()),
      ];
      for (const run of i % 2 === 0 ? pair : pair.reverse()) await run();
    }
    return {
      rows: [
        latencyRow(
          "scripted task sleeping in the driver",
          summarize(ours),
          summarize(base),
          "raw JetStream publish of the cancel -> core sub -> JetStream publish of a result -> core sub",
        ),
      ],
      notes: [
        `${samples} cancels per side after 2 warm-up each, alternating. The clock starts when handle.cancel() is called (the task's prompt_sent event already seen) and stops when handle.result() has the cancelled result: abort, error event, collect changes (git), session record, lease, result publish.`,
      ],
    };
  },
};
