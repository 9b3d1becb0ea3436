// Accounting of a scenario: which tasks have a stored result, which got two different result
// messages (counted on the wiretap, not in the stream, which keeps one per task and drops repeats
// of a Nats-Msg-Id), which were run again after they had completed, and whether events have gaps.
import { DeliverPolicy, jetstream, jetstreamManager } from "@nats-io/jetstream";
import { Kvm } from "@nats-io/kv";
import type { JsMsg } from "@nats-io/jetstream";
import type { NatsConnection } from "@nats-io/transport-node";
import type { StreamEvent, TaskResult, TaskStatus } from "@station-coding/protocol";
import { taskIDFromSubject } from "@station-coding/protocol";
import { waitFor } from "@station-coding/testkit";
import type { Env } from "./env.js";
import type { SeenResult } from "./wiretap.js";

/** What became of a scenario's tasks. */
export interface Accounting {
  submitted: number;
  /** Tasks whose stored result has the expected status. */
  completed: number;
  /** Tasks without a stored result. */
  lost: string[];
  /** Tasks whose stored result has another status than expected. */
  unexpected: { taskID: string; status: string; error?: string }[];
  /** Tasks with two different result messages, or a run that began after their first result. */
  duplicated: string[];
  /** Identical result messages sent again (a publish retried after a lost ack; same Nats-Msg-Id). */
  resent: number;
  /** Result messages seen on the wiretap for these tasks. */
  resultMessages: number;
  /** Tasks that were run more than once (a crash or restart interrupted a run: not a duplicate). */
  rerun: number;
  /** Tasks whose stored events are not exactly seq 1..n. */
  eventGaps: string[];
  /** Stored results by taskID. */
  results: Map<string, TaskResult>;
  /** Stored events by taskID, in seq order. */
  events: Map<string, StreamEvent[]>;
}

/** Calls `each` for every message stored in `stream` (read once, with an ordered consumer). */
export async function readStream(
  nc: NatsConnection,
  stream: string,
  each: (msg: JsMsg) => void,
): Promise<void> {
  const jsm = await jetstreamManager(nc);
  const total = (await jsm.streams.info(stream)).state.messages;
  if (total === 0) return;
  const consumer = await jetstream(nc).consumers.get(stream, { deliver_policy: DeliverPolicy.All });
  const messages = await consumer.consume({ max_messages: 1_000 });
  let seen = 0;
  const timer = setTimeout(() => messages.stop(), 30_000);
  try {
    for await (const msg of messages) {
      each(msg);
      seen += 1;
      if (msg.info.pending === 0 || seen >= total) break;
    }
  } finally {
    clearTimeout(timer);
    messages.stop();
  }
}

/**
 * Waits until every task has a result (seen on the wiretap, or stored: the wiretap misses what is
 * published while its own connection is down), or `timeout` runs out.
 */
export async function waitForResults(env: Env, taskIDs: readonly string[], timeout: number): Promise<void> {
  const stored = new Set<string>();
  let missing: string[] = [];
  try {
    await waitFor(
      async () => {
        const seen = (id: string) => env.wiretap.results.get(id)?.some((r) => r.result?.status !== undefined);
        missing = taskIDs.filter((id) => !seen(id) && !stored.has(id));
        if (missing.length === 0) return true;
        if (missing.length <= 20) {
          for (const id of missing) if (await env.lookups.result(id).catch(() => undefined)) stored.add(id);
        }
        throw new Error(
          `${missing.length} of ${taskIDs.length} tasks without a result, e.g. ${missing.slice(0, 5).join(", ")}`,
        );
      },
      { timeout, interval: 100, message: `results of ${taskIDs.length} tasks` },
    );
  } catch (err) {
    const detail = await diagnose(env, missing.slice(0, 3)).catch(
      (e: unknown) => `(diagnosis failed: ${String(e)})`,
    );
    throw new Error(`${err instanceof Error ? err.message : String(err)}\n${detail}`, { cause: err });
  }
}

/** What the system says about tasks without a result: lease, queue, events, worker log lines. */
async function diagnose(env: Env, taskIDs: readonly string[]): Promise<string> {
  const lines: string[] = [];
  const jsm = await jetstreamManager(env.nc);
  const consumer = await jsm.consumers
    .info(env.names.streams.tasks, env.names.consumer)
    .catch(() => undefined);
  const stream = await jsm.streams.info(env.names.streams.tasks).catch(() => undefined);
  lines.push(
    `task stream: ${stream?.state.messages ?? "?"} messages; consumer: pending ${consumer?.num_pending ?? "?"}, ` +
      `ack pending ${consumer?.num_ack_pending ?? "?"}, redelivered ${consumer?.num_redelivered ?? "?"}, ` +
      `waiting ${consumer?.num_waiting ?? "?"}`,
  );
  const leases = await new Kvm(env.nc).open(env.names.kv.leases);
  const events = new Map<string, string[]>();
  await readStream(env.nc, env.names.streams.events, (msg) => {
    const e = msg.json<StreamEvent>();
    if (taskIDs.includes(e.taskID)) {
      events.set(e.taskID, [...(events.get(e.taskID) ?? []), `${e.seq}:${e.type}@${e.workerID ?? "?"}`]);
    }
  }).catch(() => undefined);
  for (const id of taskIDs) {
    const lease = await leases.get(`task.${id}`).catch(() => null);
    lines.push(`${id}: lease ${lease ? lease.string() : "none"}`);
    lines.push(`${id}: events ${events.get(id)?.join(" ") ?? "none"}`);
    for (const child of env.children) {
      const mentions = child.output.split("\n").filter((l) => l.includes(id));
      if (mentions.length > 0) {
        lines.push(
          `${id}: worker ${child.workerID} (exited: ${child.exited}):`,
          ...mentions.slice(-15).map((l) => `  ${l.slice(0, 400)}`),
        );
      }
    }
  }
  return lines.join("\n");
}

/** Options of {@link account}. */
export interface AccountOptions {
  /** The status each task must end with. @default "completed" */
  expected?: (taskID: string) => TaskStatus;
  /** Result messages the scenario forged itself: not counted as duplicates. */
  forged?: (seen: SeenResult) => boolean;
}

/** Reads the stored results and events of the tasks and compares them with what the wiretap saw. */
export async function account(
  env: Env,
  taskIDs: readonly string[],
  options: AccountOptions = {},
): Promise<Accounting> {
  const expected = options.expected ?? (() => "completed");
  const forged = options.forged ?? (() => false);
  const results = new Map<string, TaskResult>();
  await readStream(env.nc, env.names.streams.results, (msg) => {
    const taskID = taskIDFromSubject(msg.subject) ?? "";
    results.set(taskID, msg.json<TaskResult>());
  });
  const events = new Map<string, StreamEvent[]>();
  await readStream(env.nc, env.names.streams.events, (msg) => {
    const event = msg.json<StreamEvent>();
    const list = events.get(event.taskID) ?? [];
    list.push(event);
    events.set(event.taskID, list);
  });

  const out: Accounting = {
    submitted: taskIDs.length,
    completed: 0,
    lost: [],
    unexpected: [],
    duplicated: [],
    resent: 0,
    resultMessages: 0,
    rerun: 0,
    eventGaps: [],
    results,
    events,
  };
  for (const taskID of taskIDs) {
    const result = results.get(taskID);
    const seen = (env.wiretap.results.get(taskID) ?? []).filter((s) => !forged(s));
    out.resultMessages += seen.length;
    const list = (events.get(taskID) ?? []).sort((a, b) => a.seq - b.seq);
    events.set(taskID, list);
    if (list.some((e, i) => e.seq !== i + 1)) out.eventGaps.push(taskID);
    const runs = list.filter((e) => e.type === "task_started");
    if (runs.length > 1) out.rerun += 1;
    if (!result) {
      out.lost.push(taskID);
      continue;
    }
    if (result.status === expected(taskID)) out.completed += 1;
    else
      out.unexpected.push({
        taskID,
        status: result.status,
        ...(result.error !== undefined ? { error: result.error } : {}),
      });
    const firstCompletion = Math.min(
      ...[result, ...seen.map((s) => s.result)].map((r) => Date.parse(r?.completedAt ?? "") || Infinity),
    );
    const lateRun = runs.some((e) => Date.parse(e.timestamp) > firstCompletion);
    const distinct = new Set(seen.map((s) => s.raw)).size;
    out.resent += seen.length - distinct;
    if (distinct > 1 || lateRun) out.duplicated.push(taskID);
  }
  return out;
}
