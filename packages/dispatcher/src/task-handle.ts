import type { StreamEvent, TaskResult } from "@station-coding/protocol";
import { parseDuration } from "@station-coding/protocol";
import { WaitTimeoutError } from "./errors.js";
import type { ResultWatch } from "./result-watch.js";
import { closedError } from "./result-watch.js";
import type { DispatcherRuntime } from "./runtime.js";
import type { EventsOptions } from "./task-events.js";
import { followEvents } from "./task-events.js";
import type { TaskProgress } from "./task-state.js";
import { describeTask } from "./task-state.js";

/** Options of {@link TaskHandle.result}. */
export interface ResultOptions {
  /**
   * Client-side wait limit (ms or `"30s"`); the task goes on after it. On expiry the promise
   * rejects with a {@link WaitTimeoutError} saying whether the task is queued or running.
   * @default no limit
   */
  timeout?: number | string;
  /** Stops waiting; the promise rejects with the signal's reason. */
  signal?: AbortSignal;
}

/** Where the submitted task message went (from the stream's publish acknowledgement). */
export interface SubmitReceipt {
  /** Task stream name. */
  stream: string;
  /** Sequence of the task message in the stream. */
  seq: number;
  /** True when the stream dropped this publish as a repeat of the same taskID. */
  duplicate: boolean;
}

const TIMED_OUT = Symbol("timed out");

/**
 * A submitted (or re-attached) task: follow its events, wait for its result, cancel it.
 *
 * Handles are cheap; `dispatcher.task(taskID)` makes one for any task, e.g. after a restart.
 */
export class TaskHandle {
  private watch: ResultWatch | undefined;

  /** @internal Made by `CodingDispatcher.submit` and `CodingDispatcher.task`. */
  constructor(
    private readonly rt: DispatcherRuntime,
    /** The task's id. */
    readonly taskID: string,
    /** Where the task message went; undefined for a re-attached handle. */
    readonly receipt?: SubmitReceipt,
  ) {}

  /** @internal The handle's result watch, started on first use. */
  resultWatch(): ResultWatch {
    this.watch ??= this.rt.watchResult(this.taskID);
    return this.watch;
  }

  /**
   * The task's events: replayed from `seq` 1 (or after `afterSeq`), then live, in `seq` order and
   * without duplicates, surviving reconnects. Ends once the result is in and every event before it
   * was yielded; throws a StationError when following fails (e.g. permission denied).
   */
  events(options: EventsOptions = {}): AsyncIterable<StreamEvent> {
    return followEvents(this.rt, this.taskID, this.resultWatch(), options);
  }

  /**
   * The task's result, once it is published (at once when it already is).
   *
   * @throws WaitTimeoutError (code WAIT_TIMEOUT) when `timeout` runs out first.
   * @throws PermissionDeniedError when this user may not read results.
   */
  async result(options: ResultOptions = {}): Promise<TaskResult> {
    const timeout = options.timeout === undefined ? undefined : parseDuration("timeout", options.timeout);
    const { signal } = options;
    if (this.rt.closed.aborted) throw closedError(this.taskID);
    const watch = this.resultWatch();
    const release = watch.acquire();
    const started = Date.now();
    let timer: NodeJS.Timeout | undefined;
    let onAbort: (() => void) | undefined;
    const limit = new Promise<typeof TIMED_OUT>((resolve, reject) => {
      if (timeout !== undefined) timer = setTimeout(() => resolve(TIMED_OUT), timeout);
      if (signal) {
        if (signal.aborted) reject(signal.reason as Error);
        onAbort = () => reject(signal.reason as Error);
        signal.addEventListener("abort", onAbort, { once: true });
      }
    });
    try {
      const outcome = await Promise.race([watch.promise, limit]);
      if (outcome !== TIMED_OUT) return outcome;
    } finally {
      release();
      clearTimeout(timer);
      if (onAbort) signal?.removeEventListener("abort", onAbort);
    }
    const late = await this.waitTimeout(Date.now() - started);
    if (late instanceof WaitTimeoutError) throw late;
    return late;
  }

  /** Where the task stands now: queued, running (on which worker), retrying or finished. */
  async state(): Promise<TaskProgress> {
    return describeTask(this.rt, this.taskID, this.receipt?.seq);
  }

  /**
   * Asks for the task to be cancelled. The request is stored, so a task that has not started yet
   * is cancelled when a worker picks it up; a running one ends with status `cancelled`.
   */
  async cancel(reason?: string): Promise<void> {
    await this.rt.cancel(this.taskID, reason);
  }

  /** The error for a wait that ran out, or the result when it came in at the last moment. */
  private async waitTimeout(waited: number): Promise<WaitTimeoutError | TaskResult> {
    try {
      const progress = await this.state();
      if (progress.result) return progress.result;
      return new WaitTimeoutError(this.taskID, waited, progress.phase, progress.detail, progress.lease);
    } catch (err) {
      const why = err instanceof Error ? err.message : String(err);
      return new WaitTimeoutError(
        this.taskID,
        waited,
        "unknown",
        `its state could not be read (${why})`,
        undefined,
        {
          cause: err,
        },
      );
    }
  }
}
