// 1. Round trip of a no-op task, one at a time: dispatcher.submit -> task stream -> worker ->
// scripted driver -> result -> handle.result(), against a raw JetStream publish + pull consume +
// core reply in the same process and on the same server.
import { NatsConnectionImpl } from "@nats-io/nats-core/internal";
import type { CodingDispatcher } from "@station-coding/dispatcher";
import type { TaskInput } from "@station-coding/protocol";
import { codingNames, parseTask, resolveTask } from "@station-coding/protocol";
import { BenchEnv, expectStatus, script, taskID } from "../bench-env.js";
import { eventTimes, firstOf } from "../event-times.js";
import { RawWorkQueue } from "../raw-queue.js";
import type { Scenario, ScenarioContext, ScenarioOutput } from "../scenario.js";
import { latencyRow } from "../scenario.js";
import { now, summarize } from "../stats.js";

const RAW = "raw JetStream publish + pull consume + core reply";

/** When one task passed each point, in epoch ms (event timestamps have ms resolution). */
interface Timeline {
  taskID: string;
  submitStart: number;
  submitted: number;
  resultSeen: number;
}

/** A completed no-op round trip through the whole system. */
async function systemRoundTrip(dispatcher: CodingDispatcher, input: TaskInput): Promise<Timeline> {
  const submitStart = Date.now();
  const handle = await dispatcher.submit(input);
  const submitted = Date.now();
  expectStatus(await handle.result({ timeout: "30s" }));
  return { taskID: input.taskID, submitStart, submitted, resultSeen: Date.now() };
}

/** The task payload a dispatcher publishes, for a raw message of the same size. */
export function taskPayload(prompt: string): string {
  return JSON.stringify(resolveTask(parseTask({ taskID: "raw-payload-0000", prompt }), codingNames()));
}

/**
 * Where the time of a round trip goes, from the worker's event timestamps: median ms per phase over
 * the given tasks.
 */
async function phases(env: BenchEnv, dispatcher: CodingDispatcher, timelines: Timeline[]) {
  const events = await eventTimes(
    env,
    dispatcher,
    timelines.map((t) => t.taskID),
  );
  const results = await Promise.all(timelines.map((t) => dispatcher.task(t.taskID).result()));
  const rows: [string, number[]][] = [
    ["submit (validate, publish, PubAck)", []],
    ["queued -> task_started (pull, result/cancel lookups, lease, session lock, last event seq)", []],
    [
      "task_started -> workspace_created (session lookup, workspace dir, repository from the template or git state)",
      [],
    ],
    ["workspace_created -> prompt_sent (open the agent session)", []],
    ["prompt_sent -> result built (driver, collect changes with git, session record)", []],
    ["result built -> dispatcher has it (flush events, settle lease, publish result)", []],
  ];
  for (const [i, t] of timelines.entries()) {
    const seen = events.get(t.taskID);
    const started = firstOf(seen, "task_started");
    const workspace = firstOf(seen, "workspace_created") ?? firstOf(seen, "workspace_reused");
    const prompt = firstOf(seen, "prompt_sent");
    const completed = Date.parse(results[i]?.completedAt ?? "");
    if (started === undefined || workspace === undefined || prompt === undefined || Number.isNaN(completed)) {
      continue;
    }
    const marks = [t.submitStart, t.submitted, started, workspace, prompt, completed, t.resultSeen];
    for (const [k, row] of rows.entries()) row[1].push(marks[k + 1]! - marks[k]!);
  }
  return Object.fromEntries(rows.map(([phase, xs]) => [phase, summarize(xs).p50]));
}

/**
 * Git calls per no-op task, and how often a task found its session still locked: a worker at debug
 * level logs every git call with its duration and every session-busy retry.
 */
async function gitProbe(env: BenchEnv, dispatcher: CodingDispatcher, tasks: number, followUps: number) {
  const lines: string[] = [];
  await env.worker({ logLevel: "debug", logDestination: { write: (line: string) => void lines.push(line) } });
  await systemRoundTrip(dispatcher, { taskID: taskID("rt-git-warmup"), prompt: script({ text: "ok" }) });
  lines.length = 0;
  for (let i = 0; i < tasks; i += 1) {
    await systemRoundTrip(dispatcher, { taskID: taskID("rt-git"), prompt: script({ text: "ok" }) });
  }
  const calls = lines
    .filter((l) => l.includes('"git call finished"'))
    .map((l) => JSON.parse(l) as { git: string; duration: number });
  const busyBefore = lines.filter((l) => l.includes("session is busy")).length;
  for (let i = 0; i <= followUps; i += 1) {
    await systemRoundTrip(dispatcher, {
      taskID: taskID("rt-git-reuse"),
      prompt: script({ text: "ok" }),
      session: { name: "bench-git-reused" },
      workspace: { cleanup: "on_session_end" },
    });
  }
  const busy = lines.filter((l) => l.includes("session is busy")).length - busyBefore;
  const byCommand: Record<string, number> = {};
  for (const c of calls) {
    // `git -c user.name=… commit` is logged under its first argument.
    const command = c.git === "-c" ? "commit" : c.git;
    byCommand[command] = (byCommand[command] ?? 0) + 1;
  }
  return {
    gitCallsPerTask: calls.length / tasks,
    gitMsPerTask: calls.reduce((sum, c) => sum + c.duration, 0) / tasks,
    gitCommands: Object.fromEntries(Object.entries(byCommand).map(([k, n]) => [k, n / tasks])),
    followUps,
    followUpsFoundSessionBusy: busy,
  };
}

/**
 * Requests to NATS per no-op task (every JetStream publish, KV read or write, stream lookup and
 * acknowledgement with a reply is one round trip to the server), by connection and by subject with
 * the taskID left out: `NatsConnectionImpl.request` is counted while a few tasks run one at a time.
 */
async function natsProbe(dispatcher: CodingDispatcher, tasks: number) {
  const proto = NatsConnectionImpl.prototype as unknown as {
    request: (this: NatsConnectionImpl, subject: string, ...rest: unknown[]) => Promise<unknown>;
  };
  const original = proto.request;
  const counts = new Map<string, number>();
  // A task's last writes (lease done, task index) overlap the next task: counted there.
  proto.request = function (subject, ...rest) {
    const who = (this.options.name ?? "").startsWith("station-coding-worker") ? "worker" : "dispatcher";
    const what = subject.replace(/rt-nats-\d+/g, "<task>");
    const key = `${who} ${what}`;
    counts.set(key, (counts.get(key) ?? 0) + 1);
    return original.call(this, subject, ...rest);
  };
  try {
    for (let i = 0; i < tasks; i += 1) {
      await systemRoundTrip(dispatcher, { taskID: taskID("rt-nats"), prompt: script({ text: "ok" }) });
    }
  } finally {
    proto.request = original;
  }
  const per = (who: string) =>
    [...counts].filter(([key]) => key.startsWith(`${who} `)).reduce((sum, [, n]) => sum + n, 0) / tasks;
  return {
    natsRequestsPerTask: { worker: per("worker"), dispatcher: per("dispatcher") },
    natsRequestsBySubject: Object.fromEntries([...counts].sort().map(([k, n]) => [k, n / tasks])),
  };
}

export const roundTrip: Scenario = {
  id: "round-trip",
  title: "1. Round trip of a no-op task, one at a time",
  async run(ctx: ScenarioContext): Promise<ScenarioOutput> {
    const warmup = ctx.quick ? 2 : 20;
    const rounds = ctx.quick ? 1 : 5;
    // Samples per round; a task in the same session as the previous one takes about 1 s (see notes).
    const perRound = { raw: ctx.quick ? 8 : 40, fresh: ctx.quick ? 8 : 40, reused: ctx.quick ? 2 : 4 };
    await using env = await BenchEnv.start();
    const dispatcher = await env.dispatcher();
    await env.worker();
    const raw = await RawWorkQueue.create(await env.connect(), "rt");
    await raw.startConsumers([await env.connect("raw-consumer")], "consume");
    const payload = taskPayload(script({ text: "ok" }));

    const fresh = (): TaskInput => ({ taskID: taskID("rt"), prompt: script({ text: "ok" }) });
    // One session for every task: the workspace (and its git repository) is reused, not created.
    const reused = (): TaskInput => ({
      taskID: taskID("rt-reuse"),
      prompt: script({ text: "ok" }),
      session: { name: "bench-reused" },
      workspace: { cleanup: "on_session_end" },
    });

    const timelines: Timeline[] = [];
    const variants = {
      raw: async () => {
        await raw.roundTrip(payload);
      },
      fresh: async () => {
        timelines.push(await systemRoundTrip(dispatcher, fresh()));
      },
      reused: async () => {
        await systemRoundTrip(dispatcher, reused());
      },
    };
    for (let i = 0; i < warmup; i += 1) {
      await variants.raw();
      await variants.fresh();
    }
    await variants.reused();
    timelines.length = 0;

    // Rounds alternate the order of the variants so that drift hits each of them alike.
    const samples: Record<keyof typeof variants, number[]> = { raw: [], fresh: [], reused: [] };
    const order = Object.keys(variants) as (keyof typeof variants)[];
    for (let round = 0; round < rounds; round += 1) {
      for (const name of round % 2 === 0 ? order : [...order].reverse()) {
        for (let i = 0; i < perRound[name]; i += 1) {
          const started = now();
          await variants[name]();
          samples[name].push(now() - started);
        }
      }
      ctx.log(`round ${round + 1}/${rounds}`);
    }
    const rawSummary = summarize(samples.raw);
    // A follow-up that finds its session still locked waits sessionBusyDelay (1 s) before a retry.
    const slow = samples.reused.filter((ms) => ms >= 900).length;
    const breakdown = await phases(env, dispatcher, timelines);
    const nats = await natsProbe(dispatcher, ctx.quick ? 3 : 10);
    await env.stopWorkers();
    const git = await gitProbe(env, dispatcher, ctx.quick ? 2 : 10, ctx.quick ? 1 : 3);
    return {
      rows: [
        latencyRow("no-op task, new session each (default)", summarize(samples.fresh), rawSummary, RAW),
        latencyRow("no-op task, one session (workspace reused)", summarize(samples.reused), rawSummary, RAW),
      ],
      notes: [
        `${rounds} rounds of ${perRound.raw} raw, ${perRound.fresh} new-session and ${perRound.reused} same-session round trips, after ${warmup} warm-up each; the worker (concurrency 4), dispatcher and raw client share one process and one nats-server.`,
        "Where a no-op round trip goes (median ms per phase, from the worker's event timestamps, 1 ms resolution): " +
          Object.entries(breakdown)
            .map(([phase, ms]) => `${phase}: ${ms.toFixed(0)}`)
            .join("; "),
        `Requests to NATS per no-op task (each one round trip to the server, many of them in parallel now): worker ${nats.natsRequestsPerTask.worker.toFixed(1)}, dispatcher ${nats.natsRequestsPerTask.dispatcher.toFixed(1)} (by subject: ${Object.entries(
          nats.natsRequestsBySubject,
        )
          .map(([k, n]) => `${k} ${n.toFixed(1)}`)
          .join("; ")}).`,
        `A no-op task runs ${git.gitCallsPerTask.toFixed(0)} git processes (${Object.entries(git.gitCommands)
          .map(([cmd, n]) => `${cmd} ${n.toFixed(0)}`)
          .join(", ")}) taking ${git.gitMsPerTask.toFixed(0)} ms in all (worker debug log, separate probe).`,
        `Same session back to back: ${slow} of ${samples.reused.length} measured same-session round trips took over 0.9 s, and ${git.followUpsFoundSessionBusy} of ${git.followUps} follow-ups in the debug probe logged "session is busy". The worker releases the session lock before it publishes the result, so a follow-up submitted as soon as the result is in finds the session free; one that found it busy would be retried after sessionBusyDelay (1 s).`,
      ],
      details: { phasesMedianMs: breakdown, ...nats, ...git },
    };
  },
};
