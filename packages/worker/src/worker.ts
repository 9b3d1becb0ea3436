import { jetstream, jetstreamManager } from "@nats-io/jetstream";
import type { Consumer, JetStreamClient } from "@nats-io/jetstream";
import { Kvm } from "@nats-io/kv";
import type { KV } from "@nats-io/kv";
import { Objm } from "@nats-io/obj";
import type { ObjectStore } from "@nats-io/obj";
import { connect, credsAuthenticator } from "@nats-io/transport-node";
import type { NatsConnection, Status, Subscription } from "@nats-io/transport-node";
import { trace } from "@opentelemetry/api";
import { mkdir, readFile, realpath } from "node:fs/promises";
import type { CodingNames, WorkerState } from "@station-coding/protocol";
import {
  AgentContextStore,
  CancelRequest,
  DeadLetters,
  ErrorCodes,
  StationError,
  SessionStore,
  TaskLookups,
  codingNames,
  ensureTaskConsumer,
  ensureTopology,
  taskIDFromSubject,
} from "@station-coding/protocol";
import type { Logger } from "pino";
import { Leases } from "./lease.js";
import { createLogger } from "./logger.js";
import type { ResolvedWorkerOptions, WorkerOptions } from "./options.js";
import { resolveWorkerOptions } from "./options.js";
import { Presence, WORKER_VERSION } from "./presence.js";
import { SecretRedactor } from "./redact.js";
import { Slots } from "./slots.js";
import { ShutdownError, TaskRunner } from "./task-runner.js";
import type { RunnerStats } from "./task-runner.js";
import type { SecretLookup } from "./git-credentials.js";
import { WorkspaceManager, isInside } from "./workspace.js";

interface Namespace {
  key: string;
  names: CodingNames;
  runner: TaskRunner;
  consumer: Consumer;
  cancels: Subscription;
  advisories: Subscription;
}

/**
 * A station-coding worker: pulls tasks from the task stream (one per free slot), runs them through
 * an agent driver with leases, live events, cancel and timeout, and publishes one result per task.
 *
 * Lifecycle: starting -> running -> draining -> stopped. `stop()` (and SIGTERM/SIGINT with
 * `handleSignals`) stops pulling, lets in-flight tasks finish within the grace period, then hands
 * the rest back for redelivery.
 */
export class CodingWorker {
  private stateValue: WorkerState = "starting";
  private readonly namespaces: Namespace[] = [];
  private readonly inFlight = new Map<Promise<void>, string>();
  private readonly stats: RunnerStats = { completed: 0, failed: 0 };
  private readonly shutdown = new AbortController();
  private readonly stopPulling = new AbortController();
  /** Aborted (and replaced) on every reconnect: pull loops backing off after failed pulls retry at once. */
  private reconnected = new AbortController();
  private loops: Promise<void>[] = [];
  private heartbeat: NodeJS.Timeout | undefined;
  private presence: Presence | undefined;
  private stopping: Promise<void> | undefined;
  private signalHandlers: (() => void)[] = [];
  private workspaces: WorkspaceManager | undefined;
  private sweepTimer: NodeJS.Timeout | undefined;

  private constructor(
    readonly nc: NatsConnection,
    private readonly ownsConnection: boolean,
    readonly options: ResolvedWorkerOptions,
    private readonly raw: WorkerOptions,
    readonly logger: Logger,
    readonly redactor: SecretRedactor,
  ) {}

  /** Connects (unless given a connection), prepares the topology and starts pulling tasks. */
  static async start(options: WorkerOptions): Promise<CodingWorker> {
    const resolved = resolveWorkerOptions(options);
    const redactor = new SecretRedactor(options.secrets ?? []).addFromEnv();
    for (const secret of [resolved.pass, resolved.token]) redactor.add(secret);
    const logger = createLogger(redactor, {
      ...(options.logLevel !== undefined ? { level: options.logLevel } : {}),
      ...(options.logDestination !== undefined ? { destination: options.logDestination } : {}),
    }).child({ workerID: resolved.workerID });
    const nc = options.connection ?? (await connectNats(resolved, logger));
    const worker = new CodingWorker(
      nc,
      options.connection === undefined,
      resolved,
      options,
      logger,
      redactor,
    );
    try {
      await worker.init();
    } catch (err) {
      await worker.closeConnection();
      throw err;
    }
    return worker;
  }

  /** Current lifecycle state. */
  get state(): WorkerState {
    return this.stateValue;
  }

  /** Worker id used in leases and presence. */
  get workerID(): string {
    return this.options.workerID;
  }

  /** TaskIDs running now. */
  get runningTasks(): string[] {
    return this.namespaces.flatMap((ns) => [...ns.runner.running.keys()]);
  }

  private async init(): Promise<void> {
    const { options, raw, nc } = this;
    await this.checkSandbox();
    const js = jetstream(nc);
    const jsm = await jetstreamManager(nc);
    const kvm = new Kvm(nc);
    const secretBuckets = new Map<string, Promise<KV>>();
    const getSecret: SecretLookup = async (key, org) => {
      const bucket = codingNames({ ...raw.names, ...(org !== undefined ? { org } : {}) }).kv.secrets;
      let kv = secretBuckets.get(bucket);
      if (!kv) secretBuckets.set(bucket, (kv = kvm.open(bucket)));
      const entry = await (await kv).get(key);
      return entry && entry.operation === "PUT" ? entry.string() : undefined;
    };
    const workspaces = new WorkspaceManager({
      baseDir: options.workspaceDir,
      cleanupPolicy: options.cleanupPolicy,
      git: options.git,
      maxInputBytes: options.maxInputBytes,
      getSecret,
      redactor: this.redactor,
      logger: this.logger.child({ component: "workspaces" }),
    });
    this.workspaces = workspaces;
    if (options.workspaceMaxAge > 0) {
      this.sweepTimer = setInterval(
        () => {
          workspaces
            .sweep(options.workspaceMaxAge)
            .catch((err: unknown) => this.logger.warn({ err }, "workspace sweep failed"));
        },
        Math.min(options.workspaceMaxAge, 3_600_000),
      );
      this.sweepTimer.unref();
    }
    const tracer = trace.getTracer("station-coding-worker", WORKER_VERSION);
    const slots = new Slots(options.concurrency, options.perOrgConcurrency);
    const workersBuckets = [];
    const stores = new Map<
      string,
      { context: AgentContextStore; sessions: SessionStore; artifacts: ObjectStore }
    >();
    for (const org of options.orgs) {
      const names = codingNames({ ...raw.names, ...(org !== undefined ? { org } : {}) });
      if (options.ensureTopology) await ensureTopology(nc, names, raw.topology);
      await ensureTaskConsumer(nc, names, {
        ackWait: options.ackWait,
        maxAckPending: options.maxAckPending,
        maxDeliver: options.maxDeliver,
      });
      const logger = this.logger.child(org !== undefined ? { org } : {});
      const sessions = await SessionStore.open(nc, names);
      const artifacts = await new Objm(nc).open(names.objectStore);
      stores.set(org ?? "", { context: await AgentContextStore.open(nc, names), sessions, artifacts });
      const runner = new TaskRunner({
        names,
        js,
        jsm,
        leases: new Leases(await kvm.open(names.kv.leases), options.workerID, options.ackWait),
        sessions,
        lookups: await TaskLookups.create(nc, names),
        deadLetters: new DeadLetters(nc, names),
        artifacts,
        driver: raw.driver,
        workspaces,
        options,
        redactor: this.redactor,
        logger,
        tracer,
        stats: this.stats,
        shutdown: this.shutdown.signal,
      });
      const cancels = nc.subscribe(`${names.cancelPrefix}.*`, {
        callback: (err, msg) => {
          if (err) {
            logger.error({ err }, "cancel subscription failed");
            return;
          }
          const taskID = taskIDFromSubject(msg.subject) ?? "";
          const parsed = CancelRequest.safeParse(safeJson(msg.data));
          const reason = parsed.success ? parsed.data.reason : undefined;
          if (runner.cancel(taskID, reason))
            logger.info({ taskID }, "cancel request delivered to the running task");
        },
      });
      // One worker per namespace handles each max-deliveries advisory (queue group).
      const advisories = nc.subscribe(
        `$JS.EVENT.ADVISORY.CONSUMER.MAX_DELIVERIES.${names.streams.tasks}.${names.consumer}`,
        {
          queue: `station-coding-advisories-${names.streams.tasks}`,
          callback: (err, msg) => {
            if (err) return;
            const advisory = safeJson(msg.data) as { stream_seq?: number; deliveries?: number } | undefined;
            if (typeof advisory?.stream_seq !== "number") return;
            void runner
              .onMaxDeliveries(advisory.stream_seq, advisory.deliveries ?? 0)
              .catch((e: unknown) =>
                logger.error({ err: e }, "could not dead-letter a task after max deliveries"),
              );
          },
        },
      );
      const consumer = await js.consumers.get(names.streams.tasks, names.consumer);
      workersBuckets.push(await kvm.open(names.kv.workers));
      this.namespaces.push({ key: org ?? "", names, runner, consumer, cancels, advisories });
    }
    raw.driver.attach?.({
      contextStore: (org) => stores.get(org ?? "")?.context,
      sessionStore: (org) => stores.get(org ?? "")?.sessions,
      objectStore: (org) => stores.get(org ?? "")?.artifacts,
    });
    this.presence = new Presence(workersBuckets, {
      workerID: options.workerID,
      orgs: options.orgs.filter((o): o is string => o !== undefined),
      concurrency: options.concurrency,
      heartbeatInterval: options.heartbeatInterval,
    });
    this.stateValue = "running";
    await this.beat();
    this.heartbeat = setInterval(() => void this.beat(), options.heartbeatInterval);
    this.watchReconnects();
    this.loops = this.namespaces.map((ns) => this.pullLoop(ns, slots, js));
    this.logger.info(
      { orgs: options.orgs, concurrency: options.concurrency, ackWait: options.ackWait },
      "worker running",
    );
  }

  /**
   * The driver's sandbox must confine the tools under this worker's workspace directory (else every
   * task would fail); a worker without the sandbox says so at start.
   */
  private async checkSandbox(): Promise<void> {
    const sandbox = this.raw.driver.sandbox;
    if (sandbox?.mode === "off") {
      this.logger.warn("sandbox: off; the agent's tools run unconfined and every result says sandbox: off");
      return;
    }
    if (sandbox?.workspaceRoot === undefined) return;
    await mkdir(this.options.workspaceDir, { recursive: true });
    const [dir, root] = await Promise.all([
      realpath(this.options.workspaceDir),
      realpath(sandbox.workspaceRoot),
    ]);
    if (!isInside(root, dir)) {
      throw new StationError(
        ErrorCodes.InvalidConfig,
        `workspaceDir ${this.options.workspaceDir}: outside the sandbox's workspace root ${sandbox.workspaceRoot}; give the driver workspaceRoot ${this.options.workspaceDir}`,
      );
    }
  }

  /** Pulls one task per free slot until the worker stops. */
  private async pullLoop(ns: Namespace, slots: Slots, _js: JetStreamClient): Promise<void> {
    const log = this.logger.child(ns.names.org !== undefined ? { org: ns.names.org } : {});
    let failures = 0;
    while (!this.stopPulling.signal.aborted) {
      await slots.acquire(ns.key);
      if (this.stopPulling.signal.aborted) {
        slots.release(ns.key);
        break;
      }
      let msg;
      try {
        msg = await ns.consumer.next({ expires: this.options.pullExpires });
        failures = 0;
      } catch (err) {
        slots.release(ns.key);
        failures += 1;
        if (failures === 1 || failures % 10 === 0)
          log.warn({ err: String(err) }, "pulling tasks failed; retrying");
        const wake = this.reconnected.signal;
        await abortableDelay(
          Math.min(5_000, 100 * 2 ** Math.min(failures, 6)),
          AbortSignal.any([this.stopPulling.signal, wake]),
        );
        if (wake.aborted) failures = 0;
        continue;
      }
      if (!msg) {
        slots.release(ns.key);
        continue;
      }
      if (this.stopPulling.signal.aborted) {
        // A pull issued before the stop delivered a task: hand it straight back.
        msg.nak();
        slots.release(ns.key);
        break;
      }
      const task = ns.runner.handle(msg).finally(() => {
        slots.release(ns.key);
        this.inFlight.delete(task);
      });
      this.inFlight.set(task, ns.key);
    }
  }

  /** Wakes pull loops that back off after failed pulls as soon as the connection is back. */
  private watchReconnects(): void {
    // nats.js's status iterator has stop(), though its declared type does not say so.
    const status = this.nc.status() as AsyncIterable<Status> & { stop?: () => void };
    this.stopPulling.signal.addEventListener("abort", () => status.stop?.(), { once: true });
    void (async () => {
      for await (const s of status) {
        if (s.type !== "reconnect") continue;
        this.reconnected.abort();
        this.reconnected = new AbortController();
      }
    })();
  }

  private async beat(): Promise<void> {
    try {
      await this.presence?.beat(this.stateValue, {
        inFlight: this.inFlight.size,
        completed: this.stats.completed,
        failed: this.stats.failed,
        tasks: this.runningTasks,
      });
    } catch (err) {
      this.logger.warn({ err: String(err) }, "presence heartbeat failed");
    }
  }

  /**
   * Stops pulling, waits up to `shutdownGrace` for in-flight tasks, then aborts the rest and hands
   * them back for redelivery; closes the connection if the worker opened it. Idempotent.
   */
  stop(): Promise<void> {
    this.stopping ??= this.doStop();
    return this.stopping;
  }

  private async doStop(): Promise<void> {
    this.stateValue = "draining";
    this.logger.info({ inFlight: this.inFlight.size }, "worker draining");
    this.stopPulling.abort();
    await this.beat();
    const drained = Promise.all([...this.inFlight.keys()]).then(() => true);
    const grace = new Promise<boolean>((resolve) =>
      setTimeout(() => resolve(false), this.options.shutdownGrace).unref(),
    );
    if (!(await Promise.race([drained, grace]))) {
      this.logger.warn({ inFlight: this.inFlight.size }, "grace period over; handing remaining tasks back");
      this.shutdown.abort(new ShutdownError());
      await Promise.all([...this.inFlight.keys()]);
    }
    await Promise.race([Promise.all(this.loops), abortableDelay(this.options.pullExpires + 1_000)]);
    await Promise.all([...this.inFlight.keys()]);
    for (const ns of this.namespaces) {
      ns.cancels.unsubscribe();
      ns.advisories.unsubscribe();
    }
    if (this.heartbeat) clearInterval(this.heartbeat);
    if (this.sweepTimer) clearInterval(this.sweepTimer);
    await this.workspaces?.close();
    this.stateValue = "stopped";
    await this.beat();
    await this.raw.driver.close?.().catch((err: unknown) => this.logger.warn({ err }, "driver close failed"));
    for (const remove of this.signalHandlers) remove();
    await this.closeConnection();
    this.logger.info({ completed: this.stats.completed, failed: this.stats.failed }, "worker stopped");
  }

  private async closeConnection(): Promise<void> {
    if (!this.ownsConnection) return;
    await this.nc.drain().catch(() => this.nc.close());
  }

  /** Stops gracefully on SIGTERM/SIGINT; a second signal exits at once. */
  handleSignals(onStopped: () => void = () => process.exit(0)): void {
    let count = 0;
    const handler = (signal: NodeJS.Signals) => {
      count += 1;
      if (count > 1) process.exit(130);
      this.logger.info({ signal }, "signal received; stopping");
      void this.stop().then(onStopped);
    };
    for (const sig of ["SIGTERM", "SIGINT"] as const) {
      process.on(sig, handler);
      this.signalHandlers.push(() => process.off(sig, handler));
    }
  }

  /** `await using worker = await CodingWorker.start(...)` stops it at scope end. */
  async [Symbol.asyncDispose](): Promise<void> {
    await this.stop();
  }
}

/** Connects to NATS with the worker's servers and credentials. */
async function connectNats(options: ResolvedWorkerOptions, logger: Logger): Promise<NatsConnection> {
  const nc = await connect({
    servers: options.servers,
    name: `station-coding-worker ${options.workerID}`,
    inboxPrefix: options.inboxPrefix,
    maxReconnectAttempts: -1,
    reconnectTimeWait: 500,
    ...(options.creds ? { authenticator: credsAuthenticator(await readFile(options.creds)) } : {}),
    ...(options.user !== undefined ? { user: options.user, pass: options.pass ?? "" } : {}),
    ...(options.token !== undefined ? { token: options.token } : {}),
  });
  void (async () => {
    for await (const status of nc.status()) {
      if (status.type === "disconnect" || status.type === "reconnect")
        logger.warn({ status: status.type }, "nats connection");
    }
  })();
  return nc;
}

function safeJson(data: Uint8Array): unknown {
  try {
    return JSON.parse(new TextDecoder().decode(data));
  } catch {
    return undefined;
  }
}

function abortableDelay(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    const done = () => {
      clearTimeout(timer);
      signal?.removeEventListener("abort", done);
      resolve();
    };
    const timer = setTimeout(done, ms);
    if (signal?.aborted) done();
    else signal?.addEventListener("abort", done, { once: true });
  });
}
