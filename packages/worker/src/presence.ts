import { hostname } from "node:os";
import type { KV } from "@nats-io/kv";
import type { WorkerPresence, WorkerState } from "@station-coding/protocol";

/** Worker version reported in presence records. */
export const WORKER_VERSION = "0.1.0";

/** Writes a worker's presence record to the workers bucket of every namespace it serves. */
export class Presence {
  private readonly startedAt = new Date().toISOString();

  constructor(
    private readonly buckets: KV[],
    private readonly base: Pick<WorkerPresence, "workerID" | "orgs" | "concurrency" | "heartbeatInterval">,
  ) {}

  /** Publishes the current state and load. */
  async beat(
    state: WorkerState,
    load: Pick<WorkerPresence, "inFlight" | "completed" | "failed" | "tasks">,
  ): Promise<void> {
    const record: WorkerPresence = {
      ...this.base,
      ...load,
      state,
      hostname: hostname(),
      pid: process.pid,
      version: WORKER_VERSION,
      startedAt: this.startedAt,
      heartbeatAt: new Date().toISOString(),
    };
    const data = JSON.stringify(record);
    await Promise.all(this.buckets.map((kv) => kv.put(this.base.workerID, data)));
  }
}
