import type { NatsConnection, Subscription } from "@nats-io/transport-node";
import type { CodingNames, ResolvedTask } from "@station-coding/protocol";
import { parseTask, resolveTask, safeJson } from "@station-coding/protocol";
import type { Logger } from "pino";
import { abortableDelay } from "./shared/abortable-delay.js";
import type { RunnerDeps } from "./runner-deps.js";
import type { TaskOutcomes } from "./task-outcome.js";

/** What {@link onMaxDeliveries} needs from the runner of the namespace. */
export interface MaxDeliveriesContext {
  d: RunnerDeps;
  outcomes: TaskOutcomes;
  /** Whether this worker has the task in hand (delivered here, waiting for its lease or lock, or running). */
  handles: (taskID: string) => boolean;
}

/**
 * The server stopped delivering a task (the consumer's max_deliver was reached, e.g. by a task
 * that crashes its worker each time): dead-letter it with an error result, remove it. Runs on
 * one worker of the namespace (queue subscription to the advisory).
 *
 * An advisory is a plain message: on a server that lets clients publish on `$JS.EVENT.>` anyone
 * can forge one. So its claim is checked against the server's own state first, and ignored when
 * the consumer has no max_deliver or the count is below it, when the consumer never delivered
 * that message, when the task's lease has a live holder that keeps renewing it (checked again
 * once the lease would have lapsed: the holder of a task that really hit max_deliver has died),
 * or when this worker has the task in hand. A task whose lease says done is only removed from
 * the queue.
 *
 * @returns what was done, for the log and tests.
 */
export async function onMaxDeliveries(
  ctx: MaxDeliveriesContext,
  streamSeq: number,
  deliveries: number,
): Promise<string> {
  const { jsm, names } = ctx.d;
  const base = ctx.d.logger.child({ streamSeq, deliveries });
  const ignore = (why: string, log: Logger = base): string => {
    log.warn({ why }, "max-deliveries advisory does not match the server's state; ignored");
    return `ignored: ${why}`;
  };
  const consumer = await jsm.consumers.info(names.streams.tasks, names.consumer);
  const maxDeliver = consumer.config.max_deliver ?? -1;
  if (maxDeliver <= 0) return ignore("the task consumer has no max_deliver");
  if (deliveries < maxDeliver) return ignore(`${deliveries} deliveries is below max_deliver ${maxDeliver}`);
  if (streamSeq > consumer.delivered.stream_seq) return ignore("the consumer never delivered that message");
  const stored = await jsm.streams.getMessage(names.streams.tasks, { seq: streamSeq }).catch(() => null);
  if (!stored) return "ignored: no such message";
  const drop = () => jsm.streams.deleteMessage(names.streams.tasks, streamSeq, false).catch(() => false);
  let task: ResolvedTask;
  try {
    task = resolveTask(parseTask(stored.data), names);
  } catch {
    await drop();
    return "dropped: not a valid task";
  }
  const log = base.child({ taskID: task.taskID });
  const holder = await liveHolder(ctx.d, task.taskID);
  if (holder === "done") {
    await drop();
    return "dropped: the task is done";
  }
  if (holder !== undefined) return ignore(`worker ${holder} holds the task's lease and renews it`, log);
  // Delivered here and about to take the lease (or waiting for its session's lock).
  if (ctx.handles(task.taskID)) return ignore("this worker handles the task", log);
  const reason = `gave up after ${deliveries} deliveries (the consumer's max_deliver): the task never finished`;
  await ctx.outcomes.giveUp(
    { subject: stored.subject, data: stored.data, seq: streamSeq },
    task,
    deliveries,
    reason,
    log,
  );
  await drop();
  return "dead-lettered";
}

/**
 * The worker whose lease on a task is live and stays live past its expiry (it renews it), "done"
 * for a finished task, or undefined when nobody holds it. A lease live now is looked at again
 * once it would have lapsed without renewal.
 */
async function liveHolder(d: RunnerDeps, taskID: string): Promise<string | undefined> {
  const margin = Math.max(1_000, d.options.ackWait / 3);
  for (let look = 0; look < 2; look += 1) {
    const lease = await d.leases.current(taskID);
    if (lease?.state === "done") return "done";
    const held = lease?.state === "running" || lease?.state === "publishing";
    const left = (lease?.expiresAt ?? 0) - Date.now();
    if (!held || left <= 0) return undefined;
    if (look === 1) return lease.workerID ?? "unknown";
    await abortableDelay(left + margin, d.shutdown);
  }
  return undefined;
}

/**
 * Subscribes to the namespace's max-deliveries advisories (one worker per namespace handles each:
 * a queue group) and hands each to `handle`.
 */
export function subscribeMaxDeliveries(
  nc: NatsConnection,
  names: CodingNames,
  handle: (streamSeq: number, deliveries: number) => Promise<string>,
  logger: Logger,
): Subscription {
  return nc.subscribe(`$JS.EVENT.ADVISORY.CONSUMER.MAX_DELIVERIES.${names.streams.tasks}.${names.consumer}`, {
    queue: `station-coding-advisories-${names.streams.tasks}`,
    callback: (err, msg) => {
      if (err) return;
      const advisory = safeJson(msg.data) as { stream_seq?: number; deliveries?: number } | undefined;
      if (typeof advisory?.stream_seq !== "number") return;
      void handle(advisory.stream_seq, advisory.deliveries ?? 0).catch((e: unknown) =>
        logger.error({ err: e }, "could not dead-letter a task after max deliveries"),
      );
    },
  });
}
