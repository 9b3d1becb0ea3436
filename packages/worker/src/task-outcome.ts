import { JetStreamApiError } from "@nats-io/jetstream";
import type { JsMsg } from "@nats-io/jetstream";
import { errors as natsErrors } from "@nats-io/transport-node";
import type { Span } from "@opentelemetry/api";
import { SpanStatusCode } from "@opentelemetry/api";
import type { EventDraft, ResolvedTask, TaskResult, TaskStatus, WireError } from "@station-coding/protocol";
import {
  CancelledError,
  ErrorCodes,
  MAX_ERROR_BYTES,
  StationError,
  TimeoutError,
  cutUtf8,
  recoverTaskID,
  toWireError,
} from "@station-coding/protocol";
import type { Logger } from "pino";
import type { DeadLetterSource } from "./dead-letter.js";
import { writeDeadLetter } from "./dead-letter.js";
import type { TaskDeliveries } from "./delivery.js";
import { terminate } from "./delivery.js";
import { RetriesExhaustedError, ShutdownError } from "./errors.js";
import type { EventPublisher } from "./event-publisher.js";
import type { HeldLease, HeldLock } from "./lease.js";
import { LeaseLostError } from "./lease.js";
import type { LeaseKeepAlive } from "./lease-keepalive.js";
import type { ResolvedWorkerOptions } from "./options.js";
import type { ResultPublisher } from "./result-publisher.js";
import type { RunnerDeps } from "./runner-deps.js";
import { recordSession } from "./session-record.js";
import type { SecretRedactor } from "./shared/redact.js";
import type { PromptResult } from "./shared/driver.js";
import type { TaskArtifacts } from "./task-artifacts.js";
import type { RunProducts } from "./task-ops.js";
import { setSpanMetrics } from "./task-span.js";

/** How a run of a task ended, decided by {@link runEnd}. */
export type RunEnd =
  /** Another worker took the lease over: it runs the task now; this run publishes nothing more. */
  | { kind: "lease-lost"; error: LeaseLostError }
  /** The worker stops: the task is handed back for redelivery, its attempt given back. */
  | { kind: "shutdown" }
  /** A failure a later attempt may overcome, with attempts left: tried again after `delay` ms. */
  | { kind: "retry"; wire: WireError; delay: number }
  /** Completed, cancelled, timed out or failed for good: the run's result is published. */
  | { kind: "final"; status: TaskStatus; wire: WireError | undefined };

/** The status a run's failure gives its result (none: completed). */
export function statusOf(failure: unknown): TaskStatus {
  return failure === undefined
    ? "completed"
    : failure instanceof CancelledError
      ? "cancelled"
      : failure instanceof TimeoutError
        ? "timeout"
        : "error";
}

/**
 * Decides how a run that is over ended, from its failure (undefined when it completed) and its
 * attempt number. The error text is redacted and bounded here: it goes to the lease record and the
 * dead letter, which are not redacted on the way, and it is echoed in an event and the result.
 */
export function runEnd(
  failure: unknown,
  attempt: number,
  options: Pick<ResolvedWorkerOptions, "maxAttempts" | "retryDelay" | "maxRetryDelay">,
  redactor: SecretRedactor,
): RunEnd {
  if (failure instanceof LeaseLostError) return { kind: "lease-lost", error: failure };
  if (failure instanceof ShutdownError) return { kind: "shutdown" };
  const wire = failure === undefined ? undefined : toWireError(failure);
  if (wire) wire.error = cutUtf8(redactor.redact(wire.error), MAX_ERROR_BYTES);
  // NATS itself failed (a server restart mid-task): the task may be fine, so it is retried.
  if (wire && isNatsUnavailable(failure)) wire.retryable = true;
  const status = statusOf(failure);
  if (wire && status === "error" && wire.retryable && attempt < options.maxAttempts) {
    return {
      kind: "retry",
      wire,
      delay: Math.min(options.maxRetryDelay, options.retryDelay * 2 ** (attempt - 1)),
    };
  }
  return { kind: "final", status, wire };
}

/** A run that is over, with everything its outcome needs. */
export interface FinishedRun {
  delivery: TaskDeliveries;
  lease: HeldLease;
  lock: HeldLock | undefined;
  /**
   * Still renewing the lease and the session lock and sending progress acks: each path stops it
   * before it writes the lease (a renewal in flight would fail that compare-and-set).
   */
  keepAlive: LeaseKeepAlive;
  span: Span;
  publisher: EventPublisher;
  emit: (event: EventDraft) => void;
  /** What the run produced, as far as it got (the task as run included). */
  run: RunProducts;
  /** Why it stopped; undefined when it completed. */
  failure: unknown;
  attempt: number;
  startedAt: number;
  log: Logger;
}

/** The fields of a result that every path fills in; {@link buildResult} adds who ran it and when. */
export interface ResultParts {
  taskID: string;
  status: TaskStatus;
  session: TaskResult["session"];
  workspace: TaskResult["workspace"];
  /** The error, for a result that is not `completed`. */
  wire?: WireError | undefined;
  metrics: TaskResult["metrics"];
}

/** A task result from its parts, stamped with this worker, its org and the time. */
export function buildResult(parts: ResultParts, d: Pick<RunnerDeps, "options" | "names">): TaskResult {
  const { taskID, status, session, workspace, wire, metrics } = parts;
  return {
    taskID,
    status,
    ...(wire
      ? { error: wire.error, errorType: wire.errorType, errorCode: wire.errorCode, retryable: wire.retryable }
      : {}),
    session,
    workspace,
    metrics,
    workerID: d.options.workerID,
    ...(d.names.org !== undefined ? { org: d.names.org } : {}),
    completedAt: new Date().toISOString(),
  };
}

/**
 * What becomes of a task once a run is over, or once it cannot run: its status, a retry, a
 * hand-back, a dead letter, and the result. Every path settles the lease and the delivery.
 */
export class TaskOutcomes {
  constructor(
    private readonly d: RunnerDeps,
    private readonly artifacts: TaskArtifacts,
    private readonly results: ResultPublisher,
  ) {}

  /** Ends a run as {@link runEnd} decides. */
  async settle(f: FinishedRun): Promise<void> {
    const end = runEnd(f.failure, f.attempt, this.d.options, this.d.redactor);
    switch (end.kind) {
      case "lease-lost":
        return this.abandon(f, end.error);
      case "shutdown":
        return this.handBack(f);
      case "retry":
        f.emit({ type: "error", content: end.wire.error, errorCode: end.wire.errorCode });
        return this.retry(f, end.wire, end.delay);
      case "final":
        if (end.wire) f.emit({ type: "error", content: end.wire.error, errorCode: end.wire.errorCode });
        return this.finish(f, end.status, end.wire);
    }
  }

  /** Lost lease: someone else runs the task now; publish nothing more. */
  private async abandon(
    { publisher, run, span, log, keepAlive }: FinishedRun,
    error: LeaseLostError,
  ): Promise<void> {
    log.warn({ error: error.message }, "lost the lease; abandoning the task without a result");
    await keepAlive.stop();
    publisher.close();
    if (run.workspace) await this.d.workspaces.release(run.workspace).catch(() => undefined);
    span.setStatus({ code: SpanStatusCode.ERROR, message: error.message }).end();
  }

  /** Shutdown: the attempt is given back and the task redelivered, to this or another worker. */
  private async handBack({
    publisher,
    run,
    span,
    log,
    lease,
    delivery,
    keepAlive,
  }: FinishedRun): Promise<void> {
    log.info("handing the task back for redelivery (shutdown)");
    publisher.close();
    if (run.workspace) await this.d.workspaces.release(run.workspace).catch(() => undefined);
    await publisher.flush();
    await keepAlive.stop();
    await this.d.leases.settle(lease, "released").catch(() => undefined);
    delivery.nak();
    span.end();
  }

  /** A retryable failure with attempts left: the attempt is recorded and the task redelivered after `delay`. */
  private async retry(f: FinishedRun, wire: WireError, delay: number): Promise<void> {
    const { publisher, run, span, log, lease, delivery, attempt, keepAlive } = f;
    log.warn({ error: wire.error, attempt, delay }, "retryable failure; retrying later");
    await publisher.flush();
    if (run.workspace) await this.d.workspaces.release(run.workspace).catch(() => undefined);
    await keepAlive.stop();
    try {
      await this.d.leases.settle(lease, "failed", wire.error);
      delivery.nak(delay);
    } catch (err) {
      log.warn({ err }, "could not record the failed attempt");
    }
    span.setStatus({ code: SpanStatusCode.ERROR, message: wire.error }).end();
  }

  /**
   * The run's result: outputs collected, session recorded, workspace cleaned up, then published
   * (the lease says `publishing` first, `done` once it is stored). A task that failed its last
   * attempt is dead-lettered; one that failed for good is terminated, any other acknowledged.
   */
  private async finish(f: FinishedRun, status: TaskStatus, wire: WireError | undefined): Promise<void> {
    const { delivery, lease, lock, keepAlive, span, publisher, emit, run, attempt, log } = f;
    const { task, workspace, session, output } = run;
    const { leases } = this.d;
    const { changes, artifacts } = await this.artifacts.collectOutputs(task, workspace, emit, log);
    const messageCount = await recordSession(
      this.d,
      { task, workspace, session, changes, exportKey: run.exportKey, known: run.sessionRead },
      log,
    );
    publisher.close();
    const result = buildResult(
      {
        taskID: task.taskID,
        status,
        session: {
          name: task.session.name,
          opencodeID: session?.opencodeID ?? "",
          messageCount,
          ...(session?.replaced ? { replaced: true } : {}),
          ...(session?.restored ? { restored: true } : {}),
        },
        workspace: {
          name: task.workspace.name,
          path: workspace?.path ?? "",
          ...(changes?.git ? { git: changes.git } : {}),
        },
        wire,
        metrics: {
          duration: Date.now() - f.startedAt,
          toolCalls: output?.toolCalls ?? 0,
          streamEvents: publisher.count,
          attempts: attempt,
          ...metricsOf(output),
        },
      },
      this.d,
    );
    if (output) result.result = this.d.redactor.redact(output.text);
    if (task.metadata) result.metadata = task.metadata;
    if (changes && (changes.files.length > 0 || changes.commits.length > 0)) {
      result.changes = { files: changes.files, commits: changes.commits };
    }
    if (artifacts.length > 0) result.artifacts = artifacts;
    if (run.commit) result.commit = run.commit;
    if (run.pushed) result.push = run.pushed;
    if (wire && wire.retryable && status === "error") {
      // Out of attempts for a failure that a retry might have overcome.
      await writeDeadLetter(
        this.d,
        {
          source: delivery.msg,
          task,
          attempts: attempt,
          reason: `failed ${attempt} times: ${wire.error}`,
          errorCode: wire.errorCode,
        },
        log,
      );
    }
    setSpanMetrics(span, result);
    // Before the result, waited for together: the workspace's cleanup (a `close` result means the
    // workspace is gone) and the events (all stored before the result). The keep-alive runs on
    // meanwhile: a flush held up by a NATS outage must not let the lease lapse or the message be
    // redelivered (another worker would run the task again while this one publishes).
    await Promise.all([
      workspace
        ? this.d.workspaces.finish(task, workspace, status).then(
            (outcome) => log.debug(outcome, "workspace cleanup"),
            (err: unknown) => log.warn({ err }, "workspace cleanup failed"),
          )
        : undefined,
      publisher.flush(),
    ]);
    await keepAlive.stop();
    // "publishing" first (compare-and-set: only the lease's owner publishes), "done" only once the
    // result is stored: a worker that dies in between leaves a lease the next delivery resolves
    // by looking for this result, so the task is neither lost nor run twice.
    const [publishing] = await Promise.allSettled([
      leases.settle(lease, "publishing", wire?.error),
      // The session is free once its state is recorded: a follow-up task need not wait for the
      // result or the ack. (Were the lease lost, the session would be released all the same.)
      lock
        ? leases.unlockSession(lock).catch((err: unknown) => log.warn({ err }, "session unlock failed"))
        : undefined,
    ]);
    if (publishing.status === "rejected") {
      log.warn(
        { err: publishing.reason as unknown },
        "lost the lease before publishing; the new owner will publish the result",
      );
      span.end();
      return;
    }
    // Progress acks while the result is published (its retries can outlast ack_wait): no other
    // worker gets the message meanwhile; if this one dies, the redelivery finds the lease
    // `publishing` and looks for the result.
    const progress = setInterval(
      () => delivery.working(),
      Math.max(250, Math.floor(this.d.options.ackWait / 3)),
    );
    // Once the result is stored, the lease is marked `done` while the task index is written.
    const markDone = () =>
      leases
        .settle(lease, "done", wire?.error)
        .catch((err: unknown) => log.warn({ err }, "result published; could not mark the lease done"));
    try {
      await this.results.publish(result, lease.value.generation ?? 0, log, markDone);
    } catch (err) {
      if (err instanceof StationError && err.retryable) throw err;
      // Trying again cannot help (e.g. permission denied): end the task here rather than run it again.
      const reason = `the result could not be published: ${err instanceof Error ? err.message : String(err)}`;
      log.error({ err }, reason);
      await writeDeadLetter(
        this.d,
        { source: delivery.msg, task, attempts: attempt, reason, errorCode: ErrorCodes.Internal },
        log,
      );
      await leases.settle(lease, "done", reason).catch(() => undefined);
      span.setStatus({ code: SpanStatusCode.ERROR, message: reason }).end();
      await this.terminate(delivery, reason);
      return;
    } finally {
      clearInterval(progress);
    }
    if (status === "error") this.d.stats.failed += 1;
    else this.d.stats.completed += 1;
    log.info({ status, duration: result.metrics.duration, events: publisher.count }, "task finished");
    span.setStatus(
      status === "completed"
        ? { code: SpanStatusCode.OK }
        : { code: SpanStatusCode.ERROR, message: wire?.error ?? status },
    );
    span.end();
    if (wire && !wire.retryable && status === "error") await this.terminate(delivery, wire.error);
    else await delivery.ackAck();
  }

  /** An invalid task: error result when a taskID can be recovered, terminate, log. */
  async reject(msg: JsMsg, err: unknown, log: Logger): Promise<void> {
    const wire = toWireError(err);
    wire.error = cutUtf8(wire.error, MAX_ERROR_BYTES);
    const taskID = recoverTaskID(msg.data);
    log.warn({ taskID, error: wire.error }, "invalid task rejected");
    if (taskID !== undefined && !(await this.d.lookups.result(taskID))) {
      await this.results.publishOrLog(
        buildResult(
          {
            taskID,
            status: "error",
            session: { name: taskID, opencodeID: "", messageCount: 0 },
            workspace: { name: "", path: "" },
            wire,
            metrics: { duration: 0, toolCalls: 0, streamEvents: 0 },
          },
          this.d,
        ),
        log.child({ taskID }),
        "could not publish the error result of an invalid task",
      );
    }
    await this.terminate(msg, `invalid task: ${wire.error}`);
  }

  /** Out of attempts (crashes count): dead letter, error result, terminate. */
  async exhausted(
    delivery: TaskDeliveries,
    task: ResolvedTask,
    attempts: number,
    lastError: string | undefined,
    log: Logger,
  ): Promise<void> {
    const reason = lastError
      ? `gave up after ${attempts} attempts; last error: ${lastError}`
      : `gave up after ${attempts} attempts; the worker running it stopped responding each time`;
    const { msg } = delivery;
    await this.giveUp({ subject: msg.subject, data: msg.data, seq: msg.seq }, task, attempts, reason, log);
    await this.terminate(delivery, reason);
  }

  /**
   * Gives a task up for good: dead letter (a failure to write it that a later try may overcome is
   * thrown, so the task is handled again), an error result, the lease marked done.
   */
  async giveUp(
    source: DeadLetterSource,
    task: ResolvedTask,
    attempts: number,
    reason: string,
    log: Logger,
  ): Promise<void> {
    log.error({ attempts }, reason);
    this.d.redactor.add(task.workspace.git?.token);
    await writeDeadLetter(
      this.d,
      { source, task, attempts, reason, errorCode: ErrorCodes.RetriesExhausted },
      log,
      { orThrow: true },
    );
    const stored = await this.d.sessions.get(task.session.name).catch(() => undefined);
    await this.results.publishOrLog(
      buildResult(
        {
          taskID: task.taskID,
          status: "error",
          session: {
            name: task.session.name,
            opencodeID: stored?.value.opencodeID ?? "",
            messageCount: stored?.value.messageCount ?? 0,
          },
          workspace: { name: task.workspace.name, path: "" },
          wire: toWireError(new RetriesExhaustedError(reason)),
          metrics: { duration: 0, toolCalls: 0, streamEvents: 0, attempts },
        },
        this.d,
      ),
      log,
      "could not publish the error result of a task given up; its dead letter remains",
    );
    await this.d.leases.markDone(task.taskID, reason);
    this.d.stats.failed += 1;
  }

  private terminate(target: JsMsg | TaskDeliveries, reason: string): Promise<void> {
    return terminate(target, reason, this.d.jsm, this.d.names.streams.tasks);
  }
}

/** A request that timed out, found no responder or lost its connection, or JetStream answering 503. */
function isNatsUnavailable(err: unknown): boolean {
  return (
    err instanceof natsErrors.TimeoutError ||
    err instanceof natsErrors.NoRespondersError ||
    err instanceof natsErrors.RequestError ||
    err instanceof natsErrors.ConnectionError ||
    err instanceof natsErrors.ClosedConnectionError ||
    (err instanceof JetStreamApiError && err.status === 503)
  );
}

/** A prompt's token usage, cost, model and steps as result metrics. */
function metricsOf(output: PromptResult | undefined): Partial<TaskResult["metrics"]> {
  if (!output) return {};
  return {
    ...(output.tokens
      ? {
          tokens: output.tokens,
          promptTokens: output.tokens.input,
          completionTokens: output.tokens.output,
        }
      : {}),
    ...(output.cost !== undefined ? { cost: output.cost } : {}),
    ...(output.model !== undefined ? { model: output.model } : {}),
    ...(output.provider !== undefined ? { provider: output.provider } : {}),
    ...(output.finishReason !== undefined ? { finishReason: output.finishReason } : {}),
    ...(output.steps !== undefined ? { steps: output.steps } : {}),
  };
}
