import { JetStreamApiError } from "@nats-io/jetstream";
import type { JetStreamClient, JetStreamManager, JsMsg } from "@nats-io/jetstream";
import type { ObjectStore } from "@nats-io/obj";
import { errors as natsErrors, headers } from "@nats-io/transport-node";
import type { Span, Tracer } from "@opentelemetry/api";
import { SpanStatusCode, ROOT_CONTEXT, propagation } from "@opentelemetry/api";
import type {
  ArtifactRef,
  CodingNames,
  CommitInfo,
  ResultSigner,
  DeadLetters,
  EventDraft,
  ResolvedTask,
  SessionStore,
  TaskLookups,
  TaskResult,
  TaskStatus,
  WireError,
} from "@station-coding/protocol";
import {
  CancelledError,
  ErrorCodes,
  MAX_ERROR_BYTES,
  StationError,
  TimeoutError,
  artifactKey,
  cutUtf8,
  inputKey,
  messageBudget,
  parseTask,
  patchKey,
  snapshotKey,
  recoverTaskID,
  resolveTask,
  toWireError,
  validateFileName,
} from "@station-coding/protocol";
import type { Logger } from "pino";
import { abortableDelay } from "./abortable-delay.js";
import { TaskDeliveries } from "./delivery.js";
import type { AgentDriver, OpenedSession, PromptResult } from "./driver.js";
import { EventPublisher } from "./event-publisher.js";
import { fitJson } from "./fit-message.js";
import type { HeldLease, HeldLock, Leases } from "./lease.js";
import { LeaseLostError } from "./lease.js";
import type { ResolvedWorkerOptions } from "./options.js";
import { publishBounded, publishFailure } from "./publish.js";
import type { SecretRedactor } from "./redact.js";
import type { WorkspaceChanges } from "./changes.js";
import type { PushInfo } from "./git-publish.js";
import type { PreparedWorkspace, WorkspaceManager } from "./workspace.js";
import { ArtifactError } from "./workspace-errors.js";

/** Abort reason used when the worker stops and hands a task back for redelivery. */
export class ShutdownError extends StationError {
  override name = "ShutdownError";
  constructor() {
    super(ErrorCodes.Internal, "worker is shutting down; the task is handed back", { retryable: true });
  }
}

/** Counters a worker reports in its presence record. */
export interface RunnerStats {
  completed: number;
  failed: number;
}

/** Everything a {@link TaskRunner} needs for one namespace (single-tenant or one org). */
export interface RunnerDeps {
  names: CodingNames;
  js: JetStreamClient;
  jsm: JetStreamManager;
  leases: Leases;
  sessions: SessionStore;
  lookups: TaskLookups;
  deadLetters: DeadLetters;
  artifacts: ObjectStore;
  driver: AgentDriver;
  workspaces: WorkspaceManager;
  options: ResolvedWorkerOptions;
  redactor: SecretRedactor;
  logger: Logger;
  tracer: Tracer;
  stats: RunnerStats;
  /** Aborted when the shutdown grace period ends. */
  shutdown: AbortSignal;
  /** The server's max_payload from its INFO (undefined before the first INFO arrives). */
  maxPayload: () => number | undefined;
  /** Signs results, so that dispatchers can tell them from forged ones. */
  signer?: ResultSigner;
}

/** Attempts of one result publish while the server is unavailable (about a minute in all). */
const RESULT_PUBLISH_ATTEMPTS = 30;

const headerGetter = {
  get(carrier: JsMsg["headers"], key: string): string | undefined {
    return carrier?.get(key) || undefined;
  },
  keys(carrier: JsMsg["headers"]): string[] {
    return carrier ? [...carrier.keys()] : [];
  },
};

/** Runs delivered task messages of one namespace through the driver, with leases, events and results. */
export class TaskRunner {
  /** Tasks this worker handles by taskID (from their delivery on, before the lease), for cancel requests. */
  readonly running = new Map<string, AbortController>();
  /**
   * The deliveries of each task this worker handles, registered before any await: a second
   * delivery of the same taskID joins the first instead of running it again (see TaskDeliveries).
   */
  private readonly deliveries = new Map<string, TaskDeliveries>();

  constructor(private readonly d: RunnerDeps) {}

  /** Aborts a running task because a cancel request arrived. */
  cancel(taskID: string, reason?: string): boolean {
    const controller = this.running.get(taskID);
    if (!controller) return false;
    controller.abort(new CancelledError(reason ? `task cancelled: ${reason}` : "task cancelled"));
    return true;
  }

  /** Handles one delivered task message to its end (result, retry, hand-back or drop). Never throws. */
  async handle(msg: JsMsg): Promise<void> {
    const log = this.d.logger.child({ streamSeq: msg.seq, deliveries: msg.info.deliveryCount });
    try {
      let task: ResolvedTask;
      try {
        task = resolveTask(parseTask(msg.data), this.d.names);
      } catch (err) {
        await this.reject(msg, err, log);
        return;
      }
      await this.run(msg, task, log.child({ taskID: task.taskID, session: task.session.name }));
    } catch (err) {
      // Infrastructure trouble (NATS down mid-handling): leave the message for redelivery.
      log.error({ err }, "task handling failed; the task will be redelivered");
      try {
        msg.nak(this.d.options.retryDelay);
      } catch {
        // connection gone: ack_wait expiry redelivers it
      }
    }
  }

  /** An invalid task: error result when a taskID can be recovered, terminate, log. */
  private async reject(msg: JsMsg, err: unknown, log: Logger): Promise<void> {
    const wire = toWireError(err);
    wire.error = cutUtf8(wire.error, MAX_ERROR_BYTES);
    const taskID = recoverTaskID(msg.data);
    log.warn({ taskID, error: wire.error }, "invalid task rejected");
    if (taskID !== undefined && !(await this.d.lookups.result(taskID))) {
      await this.publishResult(
        baseResult(
          taskID,
          "error",
          { name: taskID, opencodeID: "", messageCount: 0 },
          { name: "", path: "" },
          wire,
          {
            duration: 0,
            toolCalls: 0,
            streamEvents: 0,
          },
          this.d,
        ),
        0,
        log,
      ).catch((e: unknown) => {
        if (e instanceof StationError && e.retryable) throw e;
        log.error({ err: e, taskID }, "could not publish the error result of an invalid task");
      });
    }
    await this.terminate(msg, `invalid task: ${wire.error}`);
  }

  /**
   * Stops redelivery for good. On nats-server 2.9 a terminated message stays in a work-queue
   * stream, so it is also deleted; the error result (and dead letter) already say what happened.
   */
  private async terminate(target: JsMsg | TaskDeliveries, reason: string): Promise<void> {
    for (const msg of target instanceof TaskDeliveries ? target.all : [target]) {
      msg.term(reason.slice(0, 200));
      await this.d.jsm.streams
        .deleteMessage(this.d.names.streams.tasks, msg.seq, false)
        .catch(() => undefined);
    }
  }

  private async run(msg: JsMsg, task: ResolvedTask, log: Logger): Promise<void> {
    const { leases, lookups, options } = this.d;
    // A token that came with the task is a secret from here on, wherever it might be echoed.
    this.d.redactor.add(task.workspace.git?.token);
    const held = this.deliveries.get(task.taskID);
    if (held) {
      // This worker handles the taskID already: a redelivery of its message (e.g. after a
      // reconnect) or the same taskID published again. Either way it is in progress, not run again;
      // it is settled with the run it joins.
      const kind = held.attach(msg);
      msg.working();
      log.info(
        { kind },
        kind === "redelivery"
          ? "task redelivered while it runs here; continuing the current run"
          : "another message with the taskID of a task that runs here; settled with that run",
      );
      return;
    }
    const delivery = new TaskDeliveries(msg);
    const controller = new AbortController();
    this.deliveries.set(task.taskID, delivery);
    // A cancel that arrives while the lease is taken reaches the run all the same.
    this.running.set(task.taskID, controller);
    let lock: HeldLock | undefined;
    try {
      // Whether a task already ran is decided by its lease, never by a stored result alone: anyone
      // allowed to publish on a result subject could otherwise make a worker drop a real task.
      const outcome = await leases.acquire(task.taskID, msg.seq, options.maxAttempts, async (holder) => {
        const stored = await lookups.result(task.taskID);
        return stored !== undefined && stored.workerID === holder;
      });
      switch (outcome.kind) {
        case "done":
          log.info("task already finished; dropping the duplicate delivery");
          await delivery.ackAck();
          return;
        case "busy":
          log.debug({ holder: outcome.holder }, "task is running on another worker; checking back later");
          delivery.nak(options.sessionBusyDelay);
          return;
        case "exhausted":
          await this.exhausted(delivery, task, outcome.attempts, outcome.lastError, log);
          return;
        case "run":
          break;
      }
      const lease = outcome.lease;
      const stored = await lookups.cancel(task.taskID);
      if (stored && !controller.signal.aborted) {
        // A cancel stored before this delivery: before the first run, or during an earlier attempt
        // whose result was never stored (its worker died).
        const when =
          lease.value.attempts > 1 ? "during an earlier attempt of the task" : "before the task started";
        const why = stored.reason ? `: ${stored.reason}` : "";
        controller.abort(new CancelledError(`task cancelled ${when}${why}`));
      }
      if (!controller.signal.aborted) {
        lock = await leases.lockSession(task.session.name, task.taskID);
        if (!lock) {
          log.debug("session is busy with another task; retrying later");
          await leases.settle(lease, "released");
          delivery.nak(options.sessionBusyDelay);
          return;
        }
      }
      await this.execute(delivery, task, lease, lock, controller, log);
    } finally {
      this.running.delete(task.taskID);
      this.deliveries.delete(task.taskID);
      if (lock)
        await leases.unlockSession(lock).catch((err: unknown) => log.warn({ err }, "session unlock failed"));
    }
  }

  private async execute(
    delivery: TaskDeliveries,
    task: ResolvedTask,
    lease: HeldLease,
    lock: HeldLock | undefined,
    controller: AbortController,
    log: Logger,
  ): Promise<void> {
    const { options, leases, driver } = this.d;
    const startedAt = Date.now();
    const attempt = lease.value.attempts;
    const parent = propagation.extract(ROOT_CONTEXT, delivery.msg.headers, headerGetter);
    const span = this.d.tracer.startSpan(
      "opencode.task",
      { attributes: { "station.task_id": task.taskID } },
      parent,
    );
    span.setAttribute("opencode.workspace", task.workspace.name);
    if (task.model) {
      span.setAttribute("opencode.model", task.model.modelID);
      span.setAttribute("opencode.provider", task.model.providerID);
    }

    const publisher = new EventPublisher({
      js: this.d.js,
      subject: task.callback.streamSubject,
      taskID: task.taskID,
      firstSeq: (await this.lastEventSeq(task.callback.streamSubject)) + 1,
      coalesceMs: options.coalesceMs,
      redactor: this.d.redactor,
      logger: log,
      workerID: options.workerID,
      attempt,
      maxBytes: () => messageBudget(this.d.maxPayload()),
      offload: (name, data) => this.storeArtifact(task.taskID, name, data, "event"),
    });
    const emit = (event: EventDraft): void => {
      publisher.emit(event);
      if (event.type !== "text" && event.type !== "thinking") span.addEvent(event.type);
    };
    const signal = AbortSignal.any([controller.signal, this.d.shutdown]);

    // Keep the lease alive from a timer independent of the task.
    let renewing: Promise<unknown> = Promise.resolve();
    const keepAlive = setInterval(
      () => {
        delivery.working();
        renewing = Promise.all([leases.renew(lease), lock ? leases.renewSession(lock) : undefined]).catch(
          (err: unknown) => {
            if (err instanceof LeaseLostError) controller.abort(err);
            else log.warn({ err }, "lease renewal failed; will try again");
          },
        );
      },
      Math.max(250, Math.floor(options.ackWait / 3)),
    );
    const timeoutMs = task.timeout ?? options.taskTimeout;
    const timer = setTimeout(
      () => controller.abort(new TimeoutError(`task timed out after ${timeoutMs}ms`)),
      timeoutMs,
    );

    let workspace: PreparedWorkspace | undefined;
    let session: OpenedSession | undefined;
    let output: PromptResult | undefined;
    let commit: CommitInfo | undefined;
    let pushed: PushInfo | undefined;
    let exportKey: string | undefined;
    let failure: unknown;
    try {
      emit({ type: "task_started", content: `attempt ${attempt} on ${options.workerID}` });
      if (controller.signal.aborted) throw controller.signal.reason;
      const known = await this.d.sessions.get(task.session.name);
      if (task.op !== "open" && known && task.workspace.name === task.session.name) {
        // Later tasks of a session act on the session's own workspace, wherever it was opened.
        task = { ...task, workspace: { ...task.workspace, name: known.value.workspaceName } };
      }
      // The worker's own git and file work in the workspace runs while no tool call runs there.
      workspace = await this.exclusively(
        this.d.workspaces.pathFor(task.workspace.name, this.d.names.org),
        async () => {
          const prepared = await this.d.workspaces.prepare(task, this.d.names.org, emit, signal);
          // Known at once, so that a failure staging the inputs still releases it.
          workspace = prepared;
          throwIfAborted(signal);
          if (task.inputs?.length) await this.stageInputs(task, prepared);
          return prepared;
        },
        { signal },
      );
      const stored = task.session.continue ? known : undefined;
      const previous = stored?.value.opencodeID
        ? {
            opencodeID: stored.value.opencodeID,
            ...(stored.value.exportKey !== undefined ? { exportKey: stored.value.exportKey } : {}),
          }
        : undefined;
      if (task.op !== "code" && task.op !== "open") {
        // No model call: report the session as it is stored.
        session = { opencodeID: known?.value.opencodeID ?? "", reused: true };
      } else
        session = await withAbort(
          driver.openSession({
            task,
            directory: workspace.path,
            ...(previous ? { previous } : {}),
            signal,
            emit,
            logger: log,
          }),
          signal,
          options.abortGrace,
        );
      span.setAttribute("opencode.session_id", session.opencodeID);
      if (task.op === "code" || task.op === "open")
        emit({
          type: session.reused ? "session_reused" : session.restored ? "session_restored" : "session_created",
          session: { name: task.session.name, opencodeID: session.opencodeID },
          ...(session.replaced
            ? {
                content: `stored session ${previous?.opencodeID ?? ""} is not available here; a new session began`,
              }
            : {}),
        });
      if (task.op === "commit") {
        const ws = workspace;
        commit = await this.exclusively(
          ws.path,
          () =>
            this.d.workspaces.commit(
              ws,
              { message: task.commit?.message ?? "", all: task.commit?.all ?? true },
              { emit, signal, logger: log },
            ),
          { signal },
        );
      } else if (task.op === "push") {
        const ws = workspace;
        pushed = await this.exclusively(
          ws.path,
          () =>
            this.d.workspaces.push(
              ws,
              { ...task.push, ...(task.workspace.git ? { git: task.workspace.git } : {}) },
              { emit, signal, logger: log },
            ),
          { signal },
        );
      } else if (task.op === "code") {
        emit({ type: "prompt_sent", content: task.prompt ?? "" });
        const opened = session;
        const ws = workspace;
        output = await withAbort(
          driver.prompt({
            task,
            session: opened,
            directory: ws.path,
            prompt: task.prompt ?? "",
            signal,
            emit,
            storeArtifact: (name, data, kind) => this.storeArtifact(task.taskID, name, data, kind),
            logger: log,
          }),
          signal,
          options.abortGrace,
        );
      }
      if (driver.afterTask && (task.op === "code" || task.op === "open")) {
        const opened = session;
        const ws = workspace;
        const after = await driver
          .afterTask({ task, session: opened, directory: ws.path })
          .catch((err: unknown) => log.warn({ err }, "driver afterTask failed"));
        if (after && after.exportKey) exportKey = after.exportKey;
      }
    } catch (err) {
      failure = signal.aborted ? signal.reason : err;
    } finally {
      clearInterval(keepAlive);
      clearTimeout(timer);
      // A renewal still in flight would make the next compare-and-set of the lease fail.
      await renewing;
    }

    // Lost lease or shutdown: someone else will (or may) run it; publish nothing more.
    if (failure instanceof LeaseLostError) {
      log.warn({ error: failure.message }, "lost the lease; abandoning the task without a result");
      publisher.close();
      if (workspace) await this.d.workspaces.release(workspace).catch(() => undefined);
      span.setStatus({ code: SpanStatusCode.ERROR, message: failure.message }).end();
      return;
    }
    if (failure instanceof ShutdownError) {
      log.info("handing the task back for redelivery (shutdown)");
      publisher.close();
      if (workspace) await this.d.workspaces.release(workspace).catch(() => undefined);
      await publisher.flush();
      await leases.settle(lease, "released").catch(() => undefined);
      delivery.nak();
      span.end();
      return;
    }

    const wire = failure === undefined ? undefined : toWireError(failure);
    // The error text also goes to the lease record and the dead letter, which are not redacted on
    // the way; and it is echoed in an event and the result, so it is bounded.
    if (wire) wire.error = cutUtf8(this.d.redactor.redact(wire.error), MAX_ERROR_BYTES);
    // NATS itself failed (a server restart mid-task): the task may be fine, so it is retried.
    if (wire && isNatsUnavailable(failure)) wire.retryable = true;
    if (wire) emit({ type: "error", content: wire.error, errorCode: wire.errorCode });
    const status: TaskStatus =
      failure === undefined
        ? "completed"
        : failure instanceof CancelledError
          ? "cancelled"
          : failure instanceof TimeoutError
            ? "timeout"
            : "error";

    if (wire && status === "error" && wire.retryable && attempt < options.maxAttempts) {
      const delay = Math.min(options.maxRetryDelay, options.retryDelay * 2 ** (attempt - 1));
      log.warn({ error: wire.error, attempt, delay }, "retryable failure; retrying later");
      await publisher.flush();
      if (workspace) await this.d.workspaces.release(workspace).catch(() => undefined);
      try {
        await leases.settle(lease, "failed", wire.error);
        delivery.nak(delay);
      } catch (err) {
        log.warn({ err }, "could not record the failed attempt");
      }
      span.setStatus({ code: SpanStatusCode.ERROR, message: wire.error }).end();
      return;
    }

    const { changes, artifacts } = await this.collectOutputs(task, workspace, emit, log);
    const messageCount = await this.recordSession(task, workspace, session, changes, exportKey, log);
    publisher.close();
    const result = baseResult(
      task.taskID,
      status,
      {
        name: task.session.name,
        opencodeID: session?.opencodeID ?? "",
        messageCount,
        ...(session?.replaced ? { replaced: true } : {}),
        ...(session?.restored ? { restored: true } : {}),
      },
      {
        name: task.workspace.name,
        path: workspace?.path ?? "",
        ...(changes?.git ? { git: changes.git } : {}),
      },
      wire,
      {
        duration: Date.now() - startedAt,
        toolCalls: output?.toolCalls ?? 0,
        streamEvents: publisher.count,
        attempts: attempt,
        ...metricsOf(output),
      },
      this.d,
    );
    if (output) result.result = this.d.redactor.redact(output.text);
    if (task.metadata) result.metadata = task.metadata;
    if (changes && (changes.files.length > 0 || changes.commits.length > 0)) {
      result.changes = { files: changes.files, commits: changes.commits };
    }
    if (artifacts.length > 0) result.artifacts = artifacts;
    if (commit) result.commit = commit;
    if (pushed) result.push = pushed;
    if (wire && wire.retryable && status === "error") {
      await this.deadLetter(
        delivery.msg,
        task,
        attempt,
        `failed ${attempt} times: ${wire.error}`,
        wire.errorCode,
        log,
      );
    }
    setSpanMetrics(span, result);
    // Cleanup before the result: a `close` result means the workspace is gone.
    if (workspace) {
      await this.d.workspaces.finish(task, workspace, status).then(
        (outcome) => log.debug(outcome, "workspace cleanup"),
        (err: unknown) => log.warn({ err }, "workspace cleanup failed"),
      );
    }
    await publisher.flush();
    // "publishing" first (compare-and-set: only the lease's owner publishes), "done" only once the
    // result is stored: a worker that dies in between leaves a lease the next delivery resolves
    // by looking for this result, so the task is neither lost nor run twice.
    try {
      await leases.settle(lease, "publishing", wire?.error);
    } catch (err) {
      log.warn({ err }, "lost the lease before publishing; the new owner will publish the result");
      span.end();
      return;
    }
    // The session is free once its state is recorded: a follow-up task need not wait for the ack.
    if (lock)
      await leases.unlockSession(lock).catch((err: unknown) => log.warn({ err }, "session unlock failed"));
    try {
      await this.publishResult(result, lease.value.generation ?? 0, log);
    } catch (err) {
      if (err instanceof StationError && err.retryable) throw err;
      // Trying again cannot help (e.g. permission denied): end the task here rather than run it again.
      const reason = `the result could not be published: ${err instanceof Error ? err.message : String(err)}`;
      log.error({ err }, reason);
      await this.deadLetter(delivery.msg, task, attempt, reason, ErrorCodes.Internal, log);
      await leases.settle(lease, "done", reason).catch(() => undefined);
      span.setStatus({ code: SpanStatusCode.ERROR, message: reason }).end();
      await this.terminate(delivery, reason);
      return;
    }
    await leases
      .settle(lease, "done", wire?.error)
      .catch((err: unknown) => log.warn({ err }, "result published; could not mark the lease done"));
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

  /** Out of attempts (crashes count): dead letter, error result, terminate. */
  private async exhausted(
    delivery: TaskDeliveries,
    task: ResolvedTask,
    attempts: number,
    lastError: string | undefined,
    log: Logger,
  ) {
    const reason = lastError
      ? `gave up after ${attempts} attempts; last error: ${lastError}`
      : `gave up after ${attempts} attempts; the worker running it stopped responding each time`;
    const { msg } = delivery;
    await this.giveUp({ subject: msg.subject, data: msg.data, seq: msg.seq }, task, attempts, reason, log);
    await this.terminate(delivery, reason);
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
  async onMaxDeliveries(streamSeq: number, deliveries: number): Promise<string> {
    const { jsm, names } = this.d;
    const base = this.d.logger.child({ streamSeq, deliveries });
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
    const holder = await this.liveHolder(task.taskID);
    if (holder === "done") {
      await drop();
      return "dropped: the task is done";
    }
    if (holder !== undefined) return ignore(`worker ${holder} holds the task's lease and renews it`, log);
    // Delivered here and about to take the lease (or waiting for its session's lock).
    if (this.deliveries.has(task.taskID)) return ignore("this worker handles the task", log);
    const reason = `gave up after ${deliveries} deliveries (the consumer's max_deliver): the task never finished`;
    await this.giveUp(
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
  private async liveHolder(taskID: string): Promise<string | undefined> {
    const margin = Math.max(1_000, this.d.options.ackWait / 3);
    for (let look = 0; look < 2; look += 1) {
      const lease = await this.d.leases.current(taskID);
      if (lease?.state === "done") return "done";
      const held = lease?.state === "running" || lease?.state === "publishing";
      const left = (lease?.expiresAt ?? 0) - Date.now();
      if (!held || left <= 0) return undefined;
      if (look === 1) return lease.workerID ?? "unknown";
      await abortableDelay(left + margin, this.d.shutdown);
    }
    return undefined;
  }

  private async giveUp(
    source: { subject: string; data: Uint8Array; seq: number },
    task: ResolvedTask,
    attempts: number,
    reason: string,
    log: Logger,
  ): Promise<void> {
    log.error({ attempts }, reason);
    this.d.redactor.add(task.workspace.git?.token);
    await this.deadLetter(source, task, attempts, reason, ErrorCodes.RetriesExhausted, log, {
      orThrow: true,
    });
    const wire: WireError = {
      error: reason,
      errorType: "RetriesExhaustedError",
      errorCode: ErrorCodes.RetriesExhausted,
      retryable: false,
    };
    const stored = await this.d.sessions.get(task.session.name).catch(() => undefined);
    await this.publishResult(
      baseResult(
        task.taskID,
        "error",
        {
          name: task.session.name,
          opencodeID: stored?.value.opencodeID ?? "",
          messageCount: stored?.value.messageCount ?? 0,
        },
        { name: task.workspace.name, path: "" },
        wire,
        { duration: 0, toolCalls: 0, streamEvents: 0, attempts },
        this.d,
      ),
      0,
      log,
    ).catch((err: unknown) => {
      if (err instanceof StationError && err.retryable) throw err;
      log.error({ err }, "could not publish the error result of a task given up; its dead letter remains");
    });
    await this.d.leases.markDone(task.taskID, reason);
    this.d.stats.failed += 1;
  }

  /**
   * Records a dead letter: the task message minus its inline token (see DeadLetters.add) and with
   * every secret this worker knows masked, e.g. a token pasted into the prompt. A failure is logged;
   * with `orThrow`, one that a later try may overcome (NATS unavailable) is thrown.
   */
  private async deadLetter(
    source: { subject: string; data: Uint8Array; seq: number },
    task: ResolvedTask,
    attempts: number,
    reason: string,
    errorCode: string,
    log: Logger,
    { orThrow = false } = {},
  ): Promise<void> {
    const subject = this.d.names.dlqSubject(task.taskID);
    try {
      await this.d.deadLetters.add({
        taskID: task.taskID,
        ...(this.d.names.org !== undefined ? { org: this.d.names.org } : {}),
        reason,
        errorCode,
        attempts,
        subject: source.subject,
        payload: this.d.redactor.redact(new TextDecoder().decode(source.data)),
        streamSeq: source.seq,
        workerID: this.d.options.workerID,
        deadAt: new Date().toISOString(),
      });
    } catch (err) {
      const failure = publishFailure(err, subject, source.data.byteLength);
      if (orThrow && failure.retryable) throw failure;
      log.error({ err: failure }, "could not write the dead letter");
    }
  }

  /**
   * Publishes a task's result, bounded: one too large for a message is stored whole in the object
   * store and published with its text cut (or, when cutting is not enough, as a small
   * `RESULT_TOO_LARGE` error result), and a publish is tried at most {@link RESULT_PUBLISH_ATTEMPTS}
   * times.
   *
   * @throws StationError when it could not be published; `retryable` says whether a later try may.
   */
  private async publishResult(result: TaskResult, generation: number, log: Logger): Promise<void> {
    const h = headers();
    let msgID = generation > 0 ? `${result.taskID}:result:${generation}` : `${result.taskID}:result`;
    const subject = this.d.names.resultSubject(result.taskID);
    // An unconfined agent is said in every result, so no client mistakes it for a sandboxed one.
    const said = this.d.driver.sandbox?.mode === "off" ? { ...result, sandbox: "off" as const } : result;
    const data = new TextEncoder().encode(await this.resultMessage(this.d.redactor.redactValue(said), log));
    this.d.signer?.sign(data, h);
    for (let forged = 0; ; forged += 1) {
      h.set("Nats-Msg-Id", msgID);
      const ack = await publishBounded(this.d.js, subject, data, {
        headers: h,
        attempts: RESULT_PUBLISH_ATTEMPTS,
        onRetry: (err, attempt) => {
          if (attempt === 1 || attempt % 10 === 0)
            log.warn({ err, attempt }, "result publish failed, retrying");
        },
      });
      if (!ack.duplicate || forged >= 3) return;
      // Our own retried publish is fine; a result stored under our message id by someone else
      // (a forged publish) must not swallow the real one.
      const stored = await this.d.lookups.result(result.taskID).catch(() => undefined);
      if (!stored || stored.workerID === result.workerID) return;
      msgID = `${result.taskID}:result:${result.workerID ?? "worker"}:${Date.now()}`;
    }
  }

  /** The result's message body, within the server's max_payload. */
  private async resultMessage(result: TaskResult, log: Logger): Promise<string> {
    const whole = JSON.stringify(result);
    const budget = messageBudget(this.d.maxPayload());
    const bytes = Buffer.byteLength(whole);
    if (bytes <= budget) return whole;
    let fullResult: ArtifactRef | undefined;
    try {
      fullResult = await this.storeArtifact(result.taskID, "result.json", Buffer.from(whole), "result");
    } catch (err) {
      log.warn({ err }, "could not store an oversized result whole");
    }
    const cut = fitJson(result, budget, (r) => ({
      ...r,
      truncated: true,
      ...(fullResult ? { fullResult } : {}),
    }));
    log.warn(
      { bytes, budget, stored: fullResult?.key, cut: cut !== undefined },
      "result larger than a message may be",
    );
    if (cut !== undefined) return cut;
    const where = fullResult
      ? `the whole result is in ${fullResult.bucket} at ${fullResult.key}`
      : "it could not be stored either";
    return JSON.stringify({
      taskID: result.taskID,
      status: "error",
      error: `the result of task ${result.taskID} (${result.status}) is ${bytes} bytes, more than a message may hold (${budget}); ${where}`,
      errorType: "ResultTooLargeError",
      errorCode: ErrorCodes.ResultTooLarge,
      retryable: false,
      session: result.session,
      workspace: result.workspace,
      metrics: result.metrics,
      ...(result.workerID !== undefined ? { workerID: result.workerID } : {}),
      ...(result.org !== undefined ? { org: result.org } : {}),
      ...(result.completedAt !== undefined ? { completedAt: result.completedAt } : {}),
      ...(result.metadata !== undefined ? { metadata: result.metadata } : {}),
      truncated: true,
      ...(fullResult ? { fullResult } : {}),
    } satisfies TaskResult);
  }

  private async lastEventSeq(subject: string): Promise<number> {
    try {
      const msg = await this.d.jsm.streams.getMessage(this.d.names.streams.events, { last_by_subj: subject });
      const seq = (msg?.json<{ seq?: unknown }>().seq as number | undefined) ?? 0;
      return Number.isInteger(seq) ? seq : 0;
    } catch {
      return 0;
    }
  }

  private async recordSession(
    task: ResolvedTask,
    workspace: PreparedWorkspace | undefined,
    session: OpenedSession | undefined,
    changes: WorkspaceChanges | undefined,
    exportKey: string | undefined,
    log: Logger,
  ): Promise<number> {
    if (!workspace || !session || !session.opencodeID) {
      return (await this.d.sessions.get(task.session.name).catch(() => undefined))?.value.messageCount ?? 0;
    }
    try {
      const now = new Date().toISOString();
      const gitUrl = workspace.gitUrl ?? task.workspace.git?.url;
      const { value } = await this.d.sessions.update(task.session.name, (current) => {
        const same = current?.opencodeID === session.opencodeID;
        return {
          ...(current ?? {}),
          sessionName: task.session.name,
          opencodeID: session.opencodeID,
          workspaceName: workspace.name,
          workspacePath: workspace.path,
          created: current?.created ?? now,
          lastUsed: now,
          messageCount: (same ? current.messageCount : 0) + (task.op === "code" ? 1 : 0),
          ...(this.d.names.org !== undefined ? { org: this.d.names.org } : {}),
          scope: task.workspace.scope,
          ...(task.workspace.scopeID !== undefined ? { scopeID: task.workspace.scopeID } : {}),
          ...(exportKey !== undefined ? { exportKey } : {}),
          ...(gitUrl && changes?.git
            ? {
                git: {
                  url: stripCredentials(gitUrl),
                  branch: changes.git.branch,
                  lastCommit: changes.git.commit,
                },
              }
            : {}),
          workerID: this.d.options.workerID,
          lastTaskID: task.taskID,
        };
      });
      return value.messageCount;
    } catch (err) {
      log.error({ err }, "could not record the session state");
      return 0;
    }
  }

  /** Changed files, the patch and (on request) a snapshot, stored as artifacts. Never fails the task. */
  private async collectOutputs(
    task: ResolvedTask,
    workspace: PreparedWorkspace | undefined,
    emit: (event: EventDraft) => void,
    log: Logger,
  ): Promise<{ changes: WorkspaceChanges | undefined; artifacts: ArtifactRef[] }> {
    const artifacts: ArtifactRef[] = [];
    if (!workspace || task.op === "close") return { changes: undefined, artifacts };
    let changes: WorkspaceChanges | undefined;
    try {
      // The task's own calls are over; another task's in the same workspace may still run. The
      // lease is no longer renewed here, so the wait is short; past it the result has no changes.
      const collected = await this.exclusively(
        workspace.path,
        async () => ({
          changes: await this.d.workspaces.collectChanges(workspace),
          snapshot: task.snapshot ? await this.d.workspaces.snapshot(workspace) : undefined,
        }),
        { maxWait: Math.floor(this.d.options.ackWait / 3) },
      );
      changes = collected.changes;
      if (changes.patch) {
        // A secret the agent wrote into a file must not reach the object store (tokens are ASCII, so
        // a latin1 round trip keeps every other byte as it was).
        const patch = Buffer.from(
          this.d.redactor.redact(Buffer.from(changes.patch).toString("latin1")),
          "latin1",
        );
        const ref = await this.putObject(patchKey(task.taskID), patch, "patch");
        artifacts.push(ref);
        emit({ type: "artifact", artifact: ref, content: `${changes.files.length} files changed` });
      }
      if (collected.snapshot) {
        const key = snapshotKey(task.session.name, new Date().toISOString().replace(/[:.]/g, "-"));
        const ref = await this.putObject(key, collected.snapshot, "snapshot");
        artifacts.push(ref);
        emit({ type: "artifact", artifact: ref });
      }
    } catch (err) {
      log.warn({ err }, "could not collect the workspace's changes");
    }
    return { changes, artifacts };
  }

  /**
   * Runs the worker's own work in a workspace while no tool call of any task runs there (the
   * driver's exclusion, see `AgentDriver.holdWorkspace`): git and the file walks of collecting
   * changes follow paths, and a link another task's agent swaps meanwhile must not redirect them.
   */
  private exclusively<T>(
    directory: string,
    work: () => Promise<T>,
    options: { signal?: AbortSignal; maxWait?: number },
  ): Promise<T> {
    const { driver } = this.d;
    return driver.holdWorkspace ? driver.holdWorkspace(directory, work, options) : work();
  }

  /** Copies the task's staged input files from the object store into the workspace. */
  private async stageInputs(task: ResolvedTask, workspace: PreparedWorkspace): Promise<void> {
    const files: { name: string; data: Uint8Array }[] = [];
    for (const name of task.inputs ?? []) {
      const key = inputKey(task.taskID, name);
      const data = await this.d.artifacts.getBlob(key);
      if (!data) {
        throw new ArtifactError(
          `inputs ${JSON.stringify(name)}: not found in ${this.d.names.objectStore} at ${key}; upload it before publishing the task`,
        );
      }
      files.push({ name, data });
    }
    await this.d.workspaces.stageInputs(workspace, files);
  }

  private async putObject(key: string, data: Uint8Array, kind: string): Promise<ArtifactRef> {
    const info = await this.d.artifacts.putBlob({ name: key }, data);
    return { bucket: this.d.names.objectStore, key, kind, size: info.size, digest: info.digest };
  }

  private async storeArtifact(
    taskID: string,
    name: string,
    data: Uint8Array,
    kind: string,
  ): Promise<ArtifactRef> {
    return this.putObject(artifactKey(taskID, validateFileName("artifact name", name)), data, kind);
  }
}

function stripCredentials(url: string): string {
  return url.replace(/^([a-z][a-z0-9+.-]*:\/\/)[^/@]*@/i, "$1");
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

function throwIfAborted(signal: AbortSignal): void {
  if (signal.aborted) throw signal.reason;
}

/**
 * Waits for `work`, but once `signal` aborts gives it only `grace` ms more to wind down, so that
 * a driver that ignores its signal cannot hang the task.
 */
async function withAbort<T>(work: Promise<T>, signal: AbortSignal, grace: number): Promise<T> {
  if (signal.aborted) {
    void work.catch(() => undefined);
    throw signal.reason;
  }
  let onAbort: (() => void) | undefined;
  const aborted = new Promise<never>((_, reject) => {
    onAbort = () => {
      setTimeout(() => reject(signal.reason as Error), grace).unref();
    };
    signal.addEventListener("abort", onAbort, { once: true });
  });
  try {
    return await Promise.race([work, aborted]);
  } finally {
    if (onAbort) signal.removeEventListener("abort", onAbort);
    void work.catch(() => undefined);
  }
}

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

function baseResult(
  taskID: string,
  status: TaskStatus,
  session: TaskResult["session"],
  workspace: TaskResult["workspace"],
  wire: WireError | undefined,
  metrics: TaskResult["metrics"],
  d: Pick<RunnerDeps, "options" | "names">,
): TaskResult {
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

function setSpanMetrics(span: Span, result: TaskResult): void {
  const m = result.metrics;
  span.setAttribute("opencode.session_id", result.session.opencodeID);
  if (m.model) span.setAttribute("opencode.model", m.model);
  if (m.provider) span.setAttribute("opencode.provider", m.provider);
  if (m.cost !== undefined) span.setAttribute("opencode.cost", m.cost);
  if (m.tokens) {
    span.setAttribute("opencode.tokens.input", m.tokens.input);
    span.setAttribute("opencode.tokens.output", m.tokens.output);
  }
  span.setAttribute("opencode.tool_calls", m.toolCalls);
  span.setAttribute("station.status", result.status);
}
