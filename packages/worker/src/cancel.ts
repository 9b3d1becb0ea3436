import type { NatsConnection, Subscription } from "@nats-io/transport-node";
import type { CodingNames, TaskLookups } from "@station-coding/protocol";
import { CancelledError, cancelRequestFrom, safeJson, taskIDFromSubject } from "@station-coding/protocol";
import type { Logger } from "pino";

/**
 * Cancel requests of the tasks one runner handles. Each task has an AbortController from its
 * delivery on (before its lease is taken), so that a request on `<cancelPrefix>.<taskID>` reaches
 * it at any point of its run; a request stored before the delivery is applied once the lease is
 * taken ({@link TaskCancels.applyStored}). The abort reason is a `CancelledError`, which makes the
 * task's result `cancelled`.
 */
export class TaskCancels {
  private readonly running = new Map<string, AbortController>();

  constructor(private readonly lookups: TaskLookups) {}

  /** The taskIDs handled now. */
  taskIDs(): string[] {
    return [...this.running.keys()];
  }

  /** The controller whose signal a cancel request aborts, from the task's delivery on. */
  register(taskID: string): AbortController {
    const controller = new AbortController();
    this.running.set(taskID, controller);
    return controller;
  }

  /** Forgets a task whose handling is over. */
  unregister(taskID: string): void {
    this.running.delete(taskID);
  }

  /** Aborts a task this runner handles because a cancel request arrived; false when it is not here. */
  cancel(taskID: string, reason?: string): boolean {
    const controller = this.running.get(taskID);
    if (!controller) return false;
    controller.abort(new CancelledError(reason ? `task cancelled: ${reason}` : "task cancelled"));
    return true;
  }

  /**
   * Applies a cancel stored before this delivery: before the first run, or during an earlier attempt
   * whose result was never stored (its worker died). `attempts` is the run now starting.
   */
  async applyStored(taskID: string, attempts: number, controller: AbortController): Promise<void> {
    const stored = await this.lookups.cancel(taskID);
    if (stored && !controller.signal.aborted) {
      const when = attempts > 1 ? "during an earlier attempt of the task" : "before the task started";
      const why = stored.reason ? `: ${stored.reason}` : "";
      controller.abort(new CancelledError(`task cancelled ${when}${why}`));
    }
  }
}

/** Subscribes to a namespace's cancel requests and hands each to `cancels`. */
export function subscribeCancels(
  nc: NatsConnection,
  names: CodingNames,
  cancels: TaskCancels,
  logger: Logger,
): Subscription {
  return nc.subscribe(`${names.cancelPrefix}.*`, {
    callback: (err, msg) => {
      if (err) {
        logger.error({ err }, "cancel subscription failed");
        return;
      }
      const taskID = taskIDFromSubject(msg.subject) ?? "";
      // The same rule as a stored cancel (TaskLookups.cancel): junk is no request.
      const request = cancelRequestFrom(safeJson(msg.data));
      if (request && cancels.cancel(taskID, request.reason))
        logger.info({ taskID }, "cancel request delivered to the running task");
    },
  });
}
