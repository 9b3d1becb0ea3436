import { setMaxListeners } from "node:events";
import { jetstream, jetstreamManager } from "@nats-io/jetstream";
import type { JetStreamClient, JetStreamManager, PubAck } from "@nats-io/jetstream";
import { Kvm } from "@nats-io/kv";
import type { KV } from "@nats-io/kv";
import { Objm } from "@nats-io/obj";
import { AuthorizationError, connect, headers } from "@nats-io/transport-node";
import type { NatsConnection } from "@nats-io/transport-node";
import type { Tracer } from "@opentelemetry/api";
import { trace } from "@opentelemetry/api";
import type { CodingNames, TaskInput, TaskResult } from "@station-coding/protocol";
import {
  AgentContextStore,
  CancelRequest,
  DeadLetters,
  ErrorCodes,
  PermissionDeniedError,
  SessionStore,
  StationError,
  TaskIndex,
  TaskLookups,
  ValidationError,
  ensureTopology,
  natsConnectOptions,
  parseTask,
  parseWith,
  queuedRecord,
  readCredentialsFile,
  resolveTask,
  validateName,
  withoutUndefined,
} from "@station-coding/protocol";
import type { Logger } from "pino";
import { AgentContextApi } from "./agent-context.js";
import { ArtifactsApi } from "./artifacts.js";
import type { CodeInput, CodingCloseInput, CodingOpenInput, CommitInput, PushInput } from "./coding-tools.js";
import { baseTask } from "./coding-tools.js";
import { ConnectionMonitor } from "./connection-monitor.js";
import { DeadLettersApi } from "./dead-letters.js";
import { guarded, toStationError } from "./errors.js";
import type { DispatcherOptions, ResolvedDispatcherOptions } from "./options.js";
import { resolveDispatcherOptions } from "./options.js";
import { ResultWatch, closedError } from "./result-watch.js";
import type { DispatcherRuntime } from "./runtime.js";
import { SessionsApi } from "./sessions.js";
import type { DispatcherStatus } from "./status.js";
import { readStatus } from "./status.js";
import { TaskHandle } from "./task-handle.js";
import { DISPATCHER_VERSION, DispatchSpan, TRACER_NAME } from "./tracing.js";

/**
 * Bound of the `queued` write to the task index after a submit, in ms: the task is stored by then,
 * so a slow index must not hold the caller long (the worker's `running` record follows anyway).
 */
const TASK_INDEX_WRITE_TIMEOUT = 2_000;

/** The runtime shared by the dispatcher, its handles and its APIs. */
class Runtime implements DispatcherRuntime {
  readonly tracer: Tracer = trace.getTracer(TRACER_NAME, DISPATCHER_VERSION);
  readonly monitor: ConnectionMonitor;
  readonly watches = new Set<ResultWatch>();
  /** The task index, where a submitted task is recorded as `queued` (best effort). */
  readonly taskIndex: TaskIndex;
  private readonly closer = new AbortController();
  private readonly buckets = new Map<string, Promise<KV>>();

  constructor(
    readonly nc: NatsConnection,
    readonly js: JetStreamClient,
    readonly jsm: JetStreamManager,
    readonly lookups: TaskLookups,
    readonly options: ResolvedDispatcherOptions,
  ) {
    this.monitor = new ConnectionMonitor(nc, options.logger);
    // Every event follower listens for the close; a gateway follows hundreds of tasks at once.
    setMaxListeners(0, this.closer.signal);
    this.taskIndex = new TaskIndex(js, options.names, {
      timeout: TASK_INDEX_WRITE_TIMEOUT,
      onError: (err, taskID) =>
        options.logger.warn(
          { err, taskID, bucket: options.names.kv.tasks },
          "could not record the task as queued in the task index; it shows there once a worker runs it",
        ),
    });
  }

  get names(): CodingNames {
    return this.options.names;
  }

  get logger(): Logger {
    return this.options.logger;
  }

  get closed(): AbortSignal {
    return this.closer.signal;
  }

  kv(bucket: string): Promise<KV> {
    let opened = this.buckets.get(bucket);
    if (!opened) {
      opened = new Kvm(this.js).open(bucket);
      opened.catch(() => this.buckets.delete(bucket));
      this.buckets.set(bucket, opened);
    }
    return opened;
  }

  watchResult(taskID: string): ResultWatch {
    return new ResultWatch(this, taskID, {
      active: (watch) => this.watches.add(watch),
      inactive: (watch) => this.watches.delete(watch),
    });
  }

  async cancel(taskID: string, reason?: string): Promise<void> {
    this.assertOpen();
    validateName("taskID", taskID);
    const request = parseWith(
      CancelRequest,
      {
        taskID,
        ...(reason !== undefined ? { reason } : {}),
        requestedAt: new Date().toISOString(),
        requestedBy: this.options.name,
      },
      "cancel",
    );
    const subject = this.names.cancelSubject(taskID);
    await guarded(`cancelling task ${taskID} (publish to ${subject})`, () =>
      this.js.publish(subject, JSON.stringify(request)),
    );
    this.logger.info({ taskID, reason }, "cancel requested");
  }

  assertOpen(): void {
    if (this.closed.aborted) {
      throw new StationError(ErrorCodes.InvalidConfig, "the dispatcher is closed; connect a new one");
    }
  }

  async close(): Promise<void> {
    this.closer.abort();
    for (const watch of [...this.watches]) watch.stop(closedError(watch.taskID));
    await this.monitor.stop();
  }
}

/**
 * The client side of station-coding: submits coding tasks to NATS JetStream, follows their
 * events and results, cancels them, and reads sessions, agent context, artifacts, worker status
 * and dead letters of one namespace (single-tenant or one org).
 *
 * @example
 * await using dispatcher = await CodingDispatcher.connect({ servers: "nats://127.0.0.1:4222" });
 * const handle = await dispatcher.submit({ taskID: "t1", prompt: "add a README" });
 * for await (const event of handle.events()) console.log(event.seq, event.type);
 * const result = await handle.result({ timeout: "10m" });
 */
export class CodingDispatcher implements AsyncDisposable {
  /** Station coding sessions (the sessions bucket). */
  readonly sessions: SessionsApi;
  /** Agent context entries (the state bucket). */
  readonly context: AgentContextApi;
  /** Staged inputs, patches and artifacts (the object store). */
  readonly artifacts: ArtifactsApi;
  /** Tasks that will not be retried, and their replay. */
  readonly deadLetters: DeadLettersApi;
  private closing: Promise<void> | undefined;

  private constructor(
    private readonly rt: Runtime,
    private readonly ownsConnection: boolean,
  ) {
    const { nc, names, options } = rt;
    this.sessions = new SessionsApi(once(() => SessionStore.open(nc, names)));
    this.context = new AgentContextApi(once(() => AgentContextStore.open(nc, names)));
    this.artifacts = new ArtifactsApi(
      once(() => new Objm(rt.js).open(names.objectStore)),
      names.objectStore,
      options.maxArtifactBytes,
      names.org,
    );
    this.deadLetters = new DeadLettersApi(new DeadLetters(nc, names));
  }

  /**
   * Connects (unless given a connection) and, by default, creates or checks the namespace's
   * streams, buckets and object store.
   *
   * @throws ValidationError for invalid options, PermissionDeniedError when the NATS user lacks a
   *   right it needs (naming the subject), StationError when the server cannot be reached.
   */
  static async connect(options: DispatcherOptions = {}): Promise<CodingDispatcher> {
    const o = resolveDispatcherOptions(options);
    const nc = o.connection ?? (await connectNats(o));
    try {
      if (o.ensureTopology) await ensureTopology(nc, o.names, o.topology);
      const api = {
        timeout: o.requestTimeout,
        ...(o.jetstreamApiPrefix !== undefined ? { apiPrefix: o.jetstreamApiPrefix } : {}),
      };
      const js = jetstream(nc, api);
      const jsm = await jetstreamManager(nc, api);
      const lookups = await TaskLookups.create(nc, o.names, {
        jsm,
        trustedSigners: o.trustedSigners,
        onRejected: (taskID, reason) =>
          o.logger.warn(
            { taskID, subject: o.names.resultSubject(taskID) },
            `ignoring the stored message on the result subject: ${reason}`,
          ),
      });
      const rt = new Runtime(nc, js, jsm, lookups, o);
      o.logger.info({ servers: o.servers, taskSubject: o.names.taskSubject }, "dispatcher connected");
      return new CodingDispatcher(rt, o.connection === undefined);
    } catch (err) {
      if (o.connection === undefined) await nc.close().catch(() => undefined);
      throw toStationError("connecting the dispatcher", err);
    }
  }

  /** Subjects, streams and buckets of this dispatcher's namespace. */
  get names(): CodingNames {
    return this.rt.names;
  }

  /** The NATS connection in use. */
  get connection(): NatsConnection {
    return this.rt.nc;
  }

  /**
   * Validates a task, fills its defaults and publishes it to the task stream with
   * `Nats-Msg-Id: <taskID>` (a repeat within the stream's duplicate window is dropped, and a worker
   * drops a task that already has a result) and a W3C `traceparent` of a `station.dispatch` span.
   *
   * @throws ValidationError naming the field that is wrong.
   * @throws PermissionDeniedError when the user may not publish tasks.
   */
  async submit(input: TaskInput): Promise<TaskHandle> {
    this.rt.assertOpen();
    const { names, logger, nc } = this.rt;
    const task = resolveTask(parseTask(input), names);
    const wire = { ...task, ...(names.org !== undefined ? { org: names.org } : {}) };
    const data = JSON.stringify(wire);
    const maxPayload = nc.info?.max_payload;
    if (maxPayload !== undefined && Buffer.byteLength(data) > maxPayload) {
      throw new ValidationError(
        "task",
        "size",
        `task ${task.taskID}: ${Buffer.byteLength(data)} bytes is over the server's max_payload of ${maxPayload}; ` +
          "stage large inputs with artifacts.stage() and list them in `inputs`",
        ErrorCodes.InvalidTask,
      );
    }
    const h = headers();
    h.set("Nats-Msg-Id", task.taskID);
    const span = DispatchSpan.start(this.rt, task, h);
    let ack: PubAck;
    try {
      ack = await guarded(
        `submitting task ${task.taskID} (publish to ${names.taskSubject})`,
        () => this.rt.js.publish(names.taskSubject, data, { headers: h }),
        names.org,
      );
    } catch (err) {
      span.end(undefined, err);
      throw err;
    }
    // After the stream stored it, so a refused publish never lists a task; never throws.
    await this.rt.taskIndex.record(queuedRecord(task));
    const log = logger.child({ taskID: task.taskID, session: task.session.name });
    if (ack.duplicate) {
      span.duplicate();
      log.info({ streamSeq: ack.seq }, "task already submitted; the stream dropped the repeat");
    } else {
      log.info({ streamSeq: ack.seq, op: task.op }, "task submitted");
    }
    const handle = new TaskHandle(this.rt, task.taskID, {
      stream: ack.stream,
      seq: ack.seq,
      duplicate: ack.duplicate,
    });
    span.follow(handle.resultWatch());
    return handle;
  }

  /** A handle for an existing task, e.g. after a restart: its events replay and its result is fetched. */
  task(taskID: string): TaskHandle {
    this.rt.assertOpen();
    return new TaskHandle(this.rt, validateName("taskID", taskID));
  }

  /** Asks for a task to be cancelled (stored, so it also cancels a task that has not started). */
  async cancel(taskID: string, reason?: string): Promise<void> {
    await this.rt.cancel(taskID, reason);
  }

  /** Opens (or reuses) a session's workspace, cloning `git` if given, and returns the result. */
  async codingOpen(input: CodingOpenInput): Promise<TaskResult> {
    const workspace = withoutUndefined({
      name: input.workspace,
      git: input.git,
      scope: input.scope,
      scopeID: input.scopeID,
      cleanup: input.cleanup,
    });
    const handle = await this.submit({
      ...baseTask("open", input),
      workspace,
      ...withoutUndefined({ agentID: input.agentID }),
    });
    return handle.result(withoutUndefined({ timeout: input.wait }));
  }

  /** Runs a prompt in a session and returns the handle to follow it. */
  async code(input: CodeInput): Promise<TaskHandle> {
    const { session, prompt, continue: keep, workspace, agent, model, agentID, inputs, snapshot } = input;
    return this.submit({
      ...baseTask("code", input),
      prompt,
      session: { name: session, ...withoutUndefined({ continue: keep }) },
      ...withoutUndefined({ workspace, agent, model, agentID, inputs, snapshot }),
    });
  }

  /** Ends a session (the worker applies its workspace cleanup policy) and returns the result. */
  async codingClose(input: CodingCloseInput): Promise<TaskResult> {
    const handle = await this.submit({
      ...baseTask("close", input),
      ...(input.workspace !== undefined ? { workspace: { name: input.workspace } } : {}),
    });
    return handle.result(withoutUndefined({ timeout: input.wait }));
  }

  /** Commits the session's workspace; the commit is in `result.commit`. */
  async commit(input: CommitInput): Promise<TaskResult> {
    const handle = await this.submit({
      ...baseTask("commit", input),
      commit: { message: input.message, ...withoutUndefined({ all: input.all }) },
      ...(input.workspace !== undefined ? { workspace: { name: input.workspace } } : {}),
    });
    return handle.result(withoutUndefined({ timeout: input.wait }));
  }

  /** Pushes the session's workspace; what was pushed is in `result.push`. */
  async push(input: PushInput): Promise<TaskResult> {
    const handle = await this.submit({
      ...baseTask("push", input),
      push: withoutUndefined({ remote: input.remote, branch: input.branch, setUpstream: input.setUpstream }),
      ...(input.workspace !== undefined ? { workspace: { name: input.workspace } } : {}),
    });
    return handle.result(withoutUndefined({ timeout: input.wait }));
  }

  /** Queue depth, consumer counters, workers (alive or dead) and the dead-letter count. */
  async status(): Promise<DispatcherStatus> {
    this.rt.assertOpen();
    return readStatus(this.rt);
  }

  /**
   * Stops every wait and event iterator (they reject with a StationError saying how to re-attach)
   * and closes the connection if the dispatcher opened it. Tasks go on. Idempotent.
   */
  close(): Promise<void> {
    this.closing ??= this.doClose();
    return this.closing;
  }

  private async doClose(): Promise<void> {
    await this.rt.close();
    if (this.ownsConnection) await this.rt.nc.close().catch(() => undefined);
    this.rt.logger.info("dispatcher closed");
  }

  /** `await using dispatcher = await CodingDispatcher.connect(...)` closes it at scope end. */
  async [Symbol.asyncDispose](): Promise<void> {
    await this.close();
  }
}

/** Connects with the dispatcher's servers, credentials and per-org inbox prefix. */
async function connectNats(o: ResolvedDispatcherOptions): Promise<NatsConnection> {
  const path = o.creds;
  const creds = path === undefined ? undefined : await readCredentialsFile(path, "creds");
  const options = natsConnectOptions({
    servers: o.servers,
    name: o.name,
    inboxPrefix: o.names.inboxPrefix,
    timeout: o.requestTimeout,
    creds,
    credsLabel: `creds ${JSON.stringify(path)}`,
    user: o.user,
    pass: o.pass,
    token: o.token,
  });
  try {
    return await connect(options);
  } catch (err) {
    const where = `connecting to NATS at ${o.servers.join(", ")}`;
    if (err instanceof AuthorizationError) {
      throw new PermissionDeniedError(
        `${where}: the server refused the credentials (check creds, user/pass or token)`,
        { cause: err },
      );
    }
    const message = err instanceof Error ? err.message : String(err);
    throw new StationError(ErrorCodes.Internal, `${where}: ${message}`, { cause: err, retryable: true });
  }
}

/** Runs `open` on first use and keeps its promise (a failed open is tried again next time). */
function once<T>(open: () => Promise<T>): () => Promise<T> {
  let value: Promise<T> | undefined;
  return () => {
    if (!value) {
      value = open();
      value.catch(() => (value = undefined));
    }
    return value;
  };
}
