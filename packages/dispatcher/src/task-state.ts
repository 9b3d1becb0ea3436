import type { TaskLease, TaskResult } from "@station-coding/protocol";
import { TaskLease as TaskLeaseSchema, decodeEntry } from "@station-coding/protocol";
import type { TaskPhase } from "./errors.js";
import { guarded } from "./errors.js";
import type { DispatcherRuntime } from "./runtime.js";
import { readTaskConsumer, readWorkers } from "./status.js";

/** Where a task stands, from its result, its lease record and the task queue. */
export interface TaskProgress {
  taskID: string;
  phase: TaskPhase;
  /** One line for people, e.g. `still running on worker w-1 (attempt 1, started …)`. */
  detail: string;
  /** The lease record (`task.<taskID>` in the leases bucket), when there is one. */
  lease?: TaskLease;
  /** The result, once the task finished. */
  result?: TaskResult;
}

/**
 * Finds out where a task stands: finished (result stored), running (lease held, with the worker),
 * retrying (an attempt failed) or queued (no lease yet, or handed back).
 *
 * @param streamSeq task stream sequence of the submitted message, when known: says whether the
 *   message is still waiting in the stream.
 */
export async function describeTask(
  rt: DispatcherRuntime,
  taskID: string,
  streamSeq?: number,
): Promise<TaskProgress> {
  const result = await guarded(`looking up the result of task ${taskID}`, () => rt.lookups.result(taskID));
  if (result) {
    return { taskID, phase: "finished", detail: `finished with status ${result.status}`, result };
  }
  const lease = await guarded(`reading the lease of task ${taskID}`, async () => {
    const kv = await rt.kv(rt.names.kv.leases);
    return decodeEntry(await kv.get(`task.${taskID}`), TaskLeaseSchema)?.value;
  });
  const withLease = lease ? { lease } : {};
  switch (lease?.state) {
    case "running": {
      const worker = lease.workerID ?? "an unknown worker";
      const started = lease.startedAt !== undefined ? `, started ${lease.startedAt}` : "";
      const expired = lease.expiresAt !== undefined && lease.expiresAt < Date.now();
      const detail = expired
        ? `still running on worker ${worker} (attempt ${lease.attempts}${started}), but its lease expired ` +
          `at ${new Date(lease.expiresAt ?? 0).toISOString()}: the worker may have died and the task will be redelivered`
        : `still running on worker ${worker} (attempt ${lease.attempts}${started})`;
      return { taskID, phase: "running", detail, ...withLease };
    }
    case "publishing":
      return {
        taskID,
        phase: "running",
        detail: `finishing on worker ${lease.workerID ?? "an unknown worker"}: its result is being published`,
        ...withLease,
      };
    case "failed": {
      const why = lease.lastError !== undefined ? `: ${lease.lastError}` : "";
      return {
        taskID,
        phase: "retrying",
        detail: `waiting for a retry after attempt ${lease.attempts} failed${why}`,
        ...withLease,
      };
    }
    case "done":
      return {
        taskID,
        phase: "finished",
        detail: "finished, but no result is stored (it may have aged out of the results stream)",
        ...withLease,
      };
    case "released":
    case "replayed":
    case undefined:
      return { taskID, phase: "queued", detail: await queuedDetail(rt, lease, streamSeq), ...withLease };
  }
}

async function queuedDetail(
  rt: DispatcherRuntime,
  lease: TaskLease | undefined,
  streamSeq: number | undefined,
): Promise<string> {
  const parts: string[] = [];
  if (streamSeq !== undefined) {
    const stored = await rt.jsm.streams
      .getMessage(rt.names.streams.tasks, { seq: streamSeq })
      .catch(() => null);
    parts.push(
      stored
        ? `task message ${streamSeq} is still pending in stream ${rt.names.streams.tasks}`
        : `task message ${streamSeq} is no longer in stream ${rt.names.streams.tasks}`,
    );
  }
  const consumer = await readTaskConsumer(rt).catch(() => undefined);
  if (consumer) parts.push(`${consumer.pending} task(s) await delivery`);
  else parts.push(`no worker has created consumer ${rt.names.consumer} yet`);
  const workers = await readWorkers(rt).catch(() => undefined);
  if (workers) {
    const alive = workers.filter((w) => w.liveness === "alive" && w.state === "running").length;
    parts.push(alive === 0 ? "no live worker" : `${alive} live worker(s)`);
  }
  const why =
    lease?.state === "released"
      ? "a worker handed it back and it waits for redelivery"
      : lease?.state === "replayed"
        ? "it was replayed from the dead letters and waits for a worker"
        : "no worker has started it yet";
  return `still queued: ${why} (${parts.join("; ")})`;
}
