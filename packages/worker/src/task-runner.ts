import type { JsMsg } from "@nats-io/jetstream";
import type { EventDraft, ResolvedTask } from "@station-coding/protocol";
import { TimeoutError, messageBudget, parseTask, resolveTask, runningRecord } from "@station-coding/protocol";
import type { Logger } from "pino";
import { TaskCancels } from "./cancel.js";
import { TaskDeliveries } from "./delivery.js";
import { EventPublisher, lastEventSeq } from "./event-publisher.js";
import type { HeldLease, HeldLock } from "./lease.js";
import { LeaseKeepAlive } from "./lease-keepalive.js";
import { onMaxDeliveries } from "./max-deliveries.js";
import { ResultPublisher } from "./result-publisher.js";
import type { RunnerDeps } from "./runner-deps.js";
import { TaskArtifacts } from "./task-artifacts.js";
import { runOp } from "./task-ops.js";
import type { RunProducts } from "./task-ops.js";
import { TaskOutcomes } from "./task-outcome.js";
import { startTaskSpan } from "./task-span.js";

/**
 * Runs delivered task messages of one namespace through the driver, with leases, events and
 * results. The lifecycle of a delivery, and where each step lives:
 * - {@link TaskRunner.handle}: parse (an invalid task is rejected: task-outcome.ts), then
 * - `run`: join a delivery of a task already here (delivery.ts), take the lease (lease.ts), apply a
 *   stored cancel (cancel.ts), lock the session, then
 * - `execute`: span (task-span.ts), live events (event-publisher.ts), lease keep-alive
 *   (lease-keepalive.ts) and time limit around the op (task-ops.ts), then the outcome: retry,
 *   hand-back, dead letter or result (task-outcome.ts, result-publisher.ts).
 */
export class TaskRunner {
  /** Cancel requests of the tasks this runner handles (from their delivery on, before the lease). */
  readonly cancels: TaskCancels;
  /**
   * The deliveries of each task this worker handles, registered before any await: a second
   * delivery of the same taskID joins the first instead of running it again (see TaskDeliveries).
   */
  private readonly deliveries = new Map<string, TaskDeliveries>();
  private readonly artifacts: TaskArtifacts;
  private readonly outcomes: TaskOutcomes;

  constructor(private readonly d: RunnerDeps) {
    this.cancels = new TaskCancels(d.lookups);
    this.artifacts = new TaskArtifacts(d);
    this.outcomes = new TaskOutcomes(d, this.artifacts, new ResultPublisher(d, this.artifacts));
  }

  /** Handles one delivered task message to its end (result, retry, hand-back or drop). Never throws. */
  async handle(msg: JsMsg): Promise<void> {
    const log = this.d.logger.child({ streamSeq: msg.seq, deliveries: msg.info.deliveryCount });
    try {
      let task: ResolvedTask;
      try {
        task = resolveTask(parseTask(msg.data), this.d.names);
      } catch (err) {
        await this.outcomes.reject(msg, err, log);
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

  /** A max-deliveries advisory of the namespace's task consumer (see max-deliveries.ts). */
  onMaxDeliveries(streamSeq: number, deliveries: number): Promise<string> {
    const ctx = {
      d: this.d,
      outcomes: this.outcomes,
      handles: (taskID: string) => this.deliveries.has(taskID),
    };
    return onMaxDeliveries(ctx, streamSeq, deliveries);
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
    this.deliveries.set(task.taskID, delivery);
    // A cancel that arrives while the lease is taken reaches the run all the same.
    const controller = this.cancels.register(task.taskID);
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
          await this.outcomes.exhausted(delivery, task, outcome.attempts, outcome.lastError, log);
          return;
        case "run":
          break;
      }
      const lease = outcome.lease;
      // Three independent round trips, waited for together: a cancel stored before the run, the
      // session lock, and where the task's events go on (a run before this one may have emitted).
      // A session named after its task is new (the default): its lock is created without a read,
      // and its record is read meanwhile. That read counts only when the lock is the session's
      // first ever (records are written under the lock, so none can be on its way); otherwise the
      // run reads the record again under the lock.
      const fresh = task.session.name === task.taskID;
      const [, locked, lastSeq, sessionEntry] = await Promise.all([
        this.cancels.applyStored(task.taskID, lease.value.attempts, controller),
        leases.lockSession(task.session.name, task.taskID, fresh),
        lastEventSeq(this.d.jsm, this.d.names.streams.events, task.callback.streamSubject),
        // A failed read is left to the run, which reads again and reports it.
        fresh
          ? this.d.sessions.get(task.session.name).then(
              (entry) => ({ entry }),
              () => undefined,
            )
          : undefined,
      ]);
      lock = locked;
      const sessionRead = lock?.first ? sessionEntry : undefined;
      if (controller.signal.aborted) {
        // Cancelled before it ran: it needs no session (as if the lock had not been asked for).
        if (lock) await leases.unlockSession(lock);
        lock = undefined;
      } else if (!lock) {
        log.debug("session is busy with another task; retrying later");
        await leases.settle(lease, "released");
        delivery.nak(options.sessionBusyDelay);
        return;
      }
      await this.execute(
        delivery,
        task,
        lease,
        lock,
        controller,
        { firstSeq: lastSeq + 1, sessionRead },
        log,
      );
    } finally {
      this.cancels.unregister(task.taskID);
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
    known: { firstSeq: number; sessionRead: RunProducts["sessionRead"] },
    log: Logger,
  ): Promise<void> {
    const { options } = this.d;
    const startedAt = Date.now();
    const attempt = lease.value.attempts;
    const span = startTaskSpan(this.d.tracer, task, delivery.msg.headers);
    // Not awaited: the index never holds a task up (a late write never undoes the final record).
    // Redacted like every message, once the task's own token is known: the prompt excerpt may
    // carry it.
    const running = runningRecord(task, {
      worker: options.workerID,
      attempt,
      generation: lease.value.generation,
    });
    void this.d.workspaces
      .learnToken(task, this.d.names.org)
      .then(() => this.d.taskIndex.record(this.d.redactor.redactValue(running)));

    const publisher = new EventPublisher({
      js: this.d.js,
      subject: task.callback.streamSubject,
      taskID: task.taskID,
      firstSeq: known.firstSeq,
      coalesceMs: options.coalesceMs,
      redactor: this.d.redactor,
      logger: log,
      workerID: options.workerID,
      attempt,
      maxBytes: () => messageBudget(this.d.maxPayload()),
      offload: (name, data) => this.artifacts.store(task.taskID, name, data, "event"),
    });
    const emit = (event: EventDraft): void => {
      publisher.emit(event);
      if (event.type !== "text" && event.type !== "thinking") span.addEvent(event.type);
    };
    const signal = AbortSignal.any([controller.signal, this.d.shutdown]);

    const keepAlive = new LeaseKeepAlive({
      leases: this.d.leases,
      lease,
      lock,
      delivery,
      ttl: options.ackWait,
      onLost: (err) => controller.abort(err),
      logger: log,
    });
    const timeoutMs = task.timeout ?? options.taskTimeout;
    const timer = setTimeout(
      () => controller.abort(new TimeoutError(`task timed out after ${timeoutMs}ms`)),
      timeoutMs,
    );

    const run: RunProducts = { task, ...(known.sessionRead ? { sessionRead: known.sessionRead } : {}) };
    let failure: unknown;
    try {
      emit({ type: "task_started", content: `attempt ${attempt} on ${options.workerID}` });
      if (controller.signal.aborted) throw controller.signal.reason;
      await runOp({ d: this.d, artifacts: this.artifacts, emit, signal, span, log }, run);
    } catch (err) {
      failure = signal.aborted ? signal.reason : err;
    } finally {
      clearTimeout(timer);
    }
    // The keep-alive goes on while the outcome collects the run's outputs (git, object store): the
    // outcome stops it before its first write of the lease. Stopping here too covers a throw.
    try {
      await this.outcomes.settle({
        delivery,
        lease,
        lock,
        keepAlive,
        span,
        publisher,
        emit,
        run,
        failure,
        attempt,
        startedAt,
        log,
      });
    } finally {
      await keepAlive.stop();
    }
  }
}
