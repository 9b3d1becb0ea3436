import type { Msg, Subscription } from "@nats-io/transport-node";
import type { TaskResult } from "@station-coding/protocol";
import {
  ErrorCodes,
  StationError,
  TaskResult as TaskResultSchema,
  resultProblem,
  safeJson,
} from "@station-coding/protocol";
import type { Logger } from "pino";
import { toStationError } from "./errors.js";
import type { DispatcherRuntime } from "./runtime.js";

/** Delay before a failed lookup is tried again (the live subscription keeps listening meanwhile). */
const LOOKUP_RETRY_MS = 1_000;

/**
 * Waits between looks for an unsigned live result in the results stream: the stream stores a
 * message in parallel with its delivery to subscribers, so the first look may come too early.
 */
const STORED_CHECK_DELAYS_MS = [20, 50, 100, 200, 400, 800, 1_000, 1_000];

/** Tells the dispatcher which watches are listening, so that closing it can stop them. */
export interface WatchHooks {
  active(watch: ResultWatch): void;
  inactive(watch: ResultWatch): void;
}

/**
 * Waits for a task's one result: a core subscription on the result subject for the live publish,
 * plus a lookup in the results stream (after the subscription is in place, so nothing falls in
 * between) and again after every reconnect (a result published while disconnected is stored).
 *
 * Only an authentic result settles the wait; anything else on the subject is logged and ignored,
 * and waiting goes on. With trusted signers (`trustedSigners`) a result must carry a worker's valid
 * signature, live or stored. Without, a live message counts only once the results stream has
 * stored it (a publish the stream refused is not a result), and the stored message is returned.
 *
 * It listens only while someone waits (`acquire`), so an abandoned wait leaves no subscription.
 */
export class ResultWatch {
  /** Settles once, with the result or with the reason waiting failed. */
  readonly promise: Promise<TaskResult>;
  private resolveResult!: (result: TaskResult) => void;
  private rejectResult!: (err: unknown) => void;
  private done = false;
  private refs = 0;
  private sub: Subscription | undefined;
  private cleanups: (() => void)[] = [];
  private retryTimer: NodeJS.Timeout | undefined;

  constructor(
    private readonly rt: DispatcherRuntime,
    readonly taskID: string,
    private readonly hooks: WatchHooks,
  ) {
    this.promise = new Promise<TaskResult>((resolve, reject) => {
      this.resolveResult = resolve;
      this.rejectResult = reject;
    });
    // Nobody may be waiting when it fails; the failure is still seen by the next waiter.
    this.promise.catch(() => undefined);
  }

  /** Whether the result (or a failure) is in. */
  get settled(): boolean {
    return this.done;
  }

  /** Starts listening (if not already) until the returned release function is called. */
  acquire(): () => void {
    if (this.done) return () => undefined;
    this.refs += 1;
    if (this.refs === 1) this.listen();
    let released = false;
    return () => {
      if (released) return;
      released = true;
      this.refs -= 1;
      if (this.refs === 0 && !this.done) {
        this.teardown();
        this.hooks.inactive(this);
      }
    };
  }

  /** Stops listening for good; pending waits reject with `reason`. */
  stop(reason: unknown): void {
    this.fail(reason);
  }

  private listen(): void {
    const { rt, taskID } = this;
    const subject = rt.names.resultSubject(taskID);
    const what = `waiting for the result of task ${taskID}`;
    this.hooks.active(this);
    try {
      this.sub = rt.nc.subscribe(subject, {
        callback: (err, msg) => {
          if (err) this.fail(toStationError(what, err));
          else this.onLive(msg);
        },
      });
    } catch (err) {
      this.fail(toStationError(what, err));
      return;
    }
    this.cleanups.push(
      rt.monitor.onReconnect(() => void this.lookup()),
      rt.monitor.onPermissionError((pe) => {
        if (pe.subject === subject) this.fail(toStationError(what, pe));
      }),
    );
    void rt.nc.flush().then(
      () => this.lookup(),
      (err: unknown) => this.fail(toStationError(what, err)),
    );
  }

  private async lookup(): Promise<void> {
    if (this.done || this.refs === 0) return;
    try {
      const result = await this.rt.lookups.result(this.taskID);
      if (result) this.settle(result);
    } catch (err) {
      const failure = toStationError(`looking up the result of task ${this.taskID}`, err);
      if (failure.code === ErrorCodes.PermissionDenied) {
        this.fail(failure);
        return;
      }
      this.rt.logger.warn({ taskID: this.taskID, err: failure.message }, "result lookup failed; retrying");
      clearTimeout(this.retryTimer);
      this.retryTimer = setTimeout(() => void this.lookup(), LOOKUP_RETRY_MS);
    }
  }

  private onLive(msg: Msg): void {
    const log = this.rt.logger.child({ taskID: this.taskID, subject: msg.subject });
    const parsed = TaskResultSchema.safeParse(safeJson(msg.data));
    if (!parsed.success) {
      log.warn({ error: parsed.error.message }, "ignoring an invalid result message");
      return;
    }
    const { trustedSigners } = this.rt.options;
    const problem = resultProblem(parsed.data, this.taskID, this.rt.names.org, msg, trustedSigners);
    if (problem !== undefined) {
      log.warn(`ignoring a result message: ${problem}`);
      return;
    }
    if (trustedSigners.length > 0) this.settle(parsed.data);
    else void this.confirmStored(log);
  }

  /** Settles with the stored result once the stream has it; an unstored live message is ignored. */
  private async confirmStored(log: Logger): Promise<void> {
    for (const wait of STORED_CHECK_DELAYS_MS) {
      if (this.done || this.refs === 0) return;
      const stored = await this.rt.lookups.result(this.taskID).catch(() => undefined);
      if (stored) {
        this.settle(stored);
        return;
      }
      await new Promise((resolve) => setTimeout(resolve, wait));
    }
    if (!this.done && this.refs > 0) {
      log.warn("ignoring a result message that the results stream did not store (forged or refused)");
    }
  }

  private settle(result: TaskResult): void {
    if (this.done) return;
    this.finish();
    this.resolveResult(result);
  }

  private fail(err: unknown): void {
    if (this.done) return;
    this.finish();
    this.rejectResult(err);
  }

  private finish(): void {
    this.done = true;
    this.teardown();
    this.hooks.inactive(this);
  }

  private teardown(): void {
    clearTimeout(this.retryTimer);
    for (const cleanup of this.cleanups.splice(0)) cleanup();
    try {
      this.sub?.unsubscribe();
    } catch {
      // the connection is already closed
    }
    this.sub = undefined;
  }
}

/** The error pending waits get when the dispatcher closes. */
export function closedError(taskID: string): StationError {
  return new StationError(
    ErrorCodes.Internal,
    `the dispatcher was closed while waiting for task ${taskID}; re-attach with dispatcher.task("${taskID}")`,
    { retryable: true },
  );
}
