import { JetStreamApiError } from "@nats-io/jetstream";
import { WorkerPresence, safeJson, storedKeys } from "@station-coding/protocol";
import type { DispatcherRuntime } from "./runtime.js";
import { guarded } from "./errors.js";

/** A worker's presence record and whether it is still heartbeating. */
export interface WorkerStatus extends WorkerPresence {
  /** `dead` when the last heartbeat is older than three heartbeat intervals. */
  liveness: "alive" | "dead";
  /** Milliseconds since the last heartbeat. */
  heartbeatAge: number;
}

/** Counters of the shared task consumer. */
export interface TaskConsumerStatus {
  /** Durable consumer name. */
  name: string;
  /** Tasks not yet delivered to any worker. */
  pending: number;
  /** Tasks delivered and not yet acknowledged (running or in a worker's hands). */
  ackPending: number;
  /** Tasks delivered more than once. */
  redelivered: number;
  /** Pull requests waiting for tasks (idle worker slots). */
  waiting: number;
}

/** A snapshot of one namespace: queue depth, workers and dead letters. */
export interface DispatcherStatus {
  /** The namespace's org; undefined in single-tenant mode. */
  org: string | undefined;
  tasks: {
    /** Task stream name. */
    stream: string;
    /** Messages in the task stream: queued plus running tasks. */
    messages: number;
    /** The shared consumer; undefined until a worker created it. */
    consumer: TaskConsumerStatus | undefined;
  };
  /** Every worker with a presence record, alive or dead, by workerID. */
  workers: WorkerStatus[];
  /** Messages in the dead-letter stream. */
  deadLetters: number;
}

/** Every worker presence record of the namespace, classified alive or dead. */
export async function readWorkers(rt: DispatcherRuntime, now = Date.now()): Promise<WorkerStatus[]> {
  return guarded(`reading worker presence from bucket ${rt.names.kv.workers}`, async () => {
    const kv = await rt.kv(rt.names.kv.workers);
    const workers: WorkerStatus[] = [];
    for (const key of await storedKeys(rt.jsm, rt.names.kv.workers)) {
      const entry = await kv.get(key);
      if (!entry || entry.operation !== "PUT") continue;
      const parsed = WorkerPresence.safeParse(safeJson(entry.string()));
      if (!parsed.success) {
        rt.logger.warn({ key, error: parsed.error.message }, "ignoring an invalid worker presence record");
        continue;
      }
      const heartbeatAge = Math.max(0, now - Date.parse(parsed.data.heartbeatAt));
      workers.push({
        ...parsed.data,
        liveness: heartbeatAge > 3 * parsed.data.heartbeatInterval ? "dead" : "alive",
        heartbeatAge,
      });
    }
    return workers.sort((a, b) => a.workerID.localeCompare(b.workerID));
  });
}

/** The shared task consumer's counters, or undefined when no worker has created it yet. */
export async function readTaskConsumer(rt: DispatcherRuntime): Promise<TaskConsumerStatus | undefined> {
  const { streams, consumer } = rt.names;
  return guarded(`reading consumer ${streams.tasks}/${consumer}`, async () => {
    try {
      const info = await rt.jsm.consumers.info(streams.tasks, consumer);
      return {
        name: consumer,
        pending: info.num_pending,
        ackPending: info.num_ack_pending,
        redelivered: info.num_redelivered,
        waiting: info.num_waiting,
      };
    } catch (err) {
      if (err instanceof JetStreamApiError && err.code === 10014) return undefined;
      throw err;
    }
  });
}

/** Builds a {@link DispatcherStatus}. */
export async function readStatus(rt: DispatcherRuntime): Promise<DispatcherStatus> {
  const { streams } = rt.names;
  const [tasks, dlq, consumer, workers] = await Promise.all([
    guarded(`reading stream ${streams.tasks}`, () => rt.jsm.streams.info(streams.tasks)),
    guarded(`reading stream ${streams.dlq}`, () => rt.jsm.streams.info(streams.dlq)),
    readTaskConsumer(rt),
    readWorkers(rt),
  ]);
  return {
    org: rt.names.org,
    tasks: { stream: streams.tasks, messages: tasks.state.messages, consumer },
    workers,
    deadLetters: dlq.state.messages,
  };
}
