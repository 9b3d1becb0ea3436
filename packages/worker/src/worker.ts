import { jetstream, jetstreamManager } from "@nats-io/jetstream";
import type { Consumer } from "@nats-io/jetstream";
import { Kvm } from "@nats-io/kv";
import type { KV } from "@nats-io/kv";
import { Objm } from "@nats-io/obj";
import type { ObjectStore } from "@nats-io/obj";
import { connect } from "@nats-io/transport-node";
import type { NatsConnection, Status, Subscription } from "@nats-io/transport-node";
import { trace } from "@opentelemetry/api";
import { mkdir, realpath } from "node:fs/promises";
import type { CodingNames, WorkerState } from "@station-coding/protocol";
import {
  AgentContextStore,
  DeadLetters,
  ErrorCodes,
  ResultSigner,
  SessionStore,
  StationError,
  TaskIndex,
  TaskLookups,
  ValidationError,
  codingNames,
  ensureTaskConsumer,
  ensureTopology,
  natsConnectOptions,
  readCredentialsFile,
  seedFromCredentials,
} from "@station-coding/protocol";
import type { HealthReport, MetricsServer, StationMetrics } from "@station-coding/telemetry/metrics";
import type { Logger } from "pino";
import { abortableDelay } from "./shared/abortable-delay.js";
import { subscribeCancels } from "./cancel.js";
import { Leases } from "./lease.js";
import { subscribeMaxDeliveries } from "./max-deliveries.js";
import { createLogger } from "./logger.js";
import type { ResolvedWorkerOptions, WorkerOptions } from "./options.js";
import { resolveWorkerOptions, workerInboxPrefix } from "./options.js";
import { Presence, WORKER_VERSION } from "./presence.js";
import { SecretRedactor } from "./shared/redact.js";
import { Slots } from "./slots.js";
import { ShutdownError } from "./errors.js";
import type { RunnerStats } from "./runner-deps.js";
import { TaskRunner } from "./task-runner.js";
import type { SecretLookup } from "./git/git-credentials.js";
import { WorkspaceManager, isInside } from "./workspace/workspace.js";

interface Namespace {
  key: string;
  /** The connection serving this namespace (its org's own, or the shared one). */
  nc: NatsConnection;
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
  private metricsValue: StationMetrics | undefined;
  private metricsServer: MetricsServer | undefined;
  /** Connections that are disconnected now (waiting to reconnect). */
  private readonly disconnected = new Set<NatsConnection>();
  /** Connections this worker opened (and closes): the shared one and one per org with `orgCreds`. */
  private readonly owned: NatsConnection[] = [];

  private constructor(
    private readonly shared: NatsConnection | undefined,
    ownsShared: boolean,
    private readonly sharedCreds: Uint8Array | undefined,
    readonly options: ResolvedWorkerOptions,
    private readonly raw: WorkerOptions,
    readonly logger: Logger,
    readonly redactor: SecretRedactor,
  ) {
    if (shared && ownsShared) this.owned.push(shared);
  }

  /** The worker's metrics, when `metricsListen` is set. */
  get metrics(): StationMetrics | undefined {
    return this.metricsValue;
  }

  /** Connects (unless given a connection), prepares the topology and starts pulling tasks. */
  static async start(options: WorkerOptions): Promise<CodingWorker> {
    const resolved = resolveWorkerOptions(options);
    const redactor = new SecretRedactor(options.secrets ?? []).addFromEnv();
    for (const secret of [resolved.pass, resolved.token]) redactor.add(secret);
    const logger = createLogger(redactor, {
      ...(options.logLevel !== undefined ? { level: options.logLevel } : {}),
      ...(options.logDestination !== undefined ? { destination: options.logDestination } : {}),
    }).child({ workerID: resolved.workerID });
    const sharedCreds =
      resolved.creds !== undefined ? await readCredentials(resolved.creds, "creds", redactor) : undefined;
    // Orgs with their own credentials get their own connection; the rest share one.
    const needsShared = resolved.orgs.some((org) => org === undefined || !resolved.orgCreds[org]);
    const nc =
      options.connection ??
      (needsShared
        ? await connectNats(resolved, logger, {
            inboxPrefix: resolved.inboxPrefix,
            creds: sharedCreds,
            user: resolved.user,
            pass: resolved.pass,
            token: resolved.token,
          })
        : undefined);
    const worker = new CodingWorker(
      nc,
      options.connection === undefined,
      sharedCreds,
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

  /** The worker's NATS connection: the shared one, or the first org's when each org has its own. */
  get nc(): NatsConnection {
    const nc = this.shared ?? this.namespaces[0]?.nc ?? this.owned[0];
    if (!nc) throw new Error("the worker has no NATS connection yet");
    return nc;
  }

  /** Current lifecycle state. */
  get state(): WorkerState {
    return this.stateValue;
  }

  /** Worker id used in leases and presence. */
  get workerID(): string {
    return this.options.workerID;
  }

  /** `http://host:port` of the `/metrics` and `/healthz` listener, when `metricsListen` is set. */
  get metricsUrl(): string | undefined {
    return this.metricsServer?.url;
  }

  /** TaskIDs running now. */
  get runningTasks(): string[] {
    return this.namespaces.flatMap((ns) => ns.runner.cancels.taskIDs());
  }

  private async init(): Promise<void> {
    const { options, raw } = this;
    await this.checkSandbox();
    // prom-client is loaded only by a worker that serves metrics.
    const telemetry =
      options.metricsListen !== undefined ? await import("@station-coding/telemetry/metrics") : undefined;
    if (telemetry) this.metricsValue = new telemetry.StationMetrics({ labels: { worker: options.workerID } });
    const explicitSigner =
      options.resultSigningKey !== undefined
        ? await readSigner(options.resultSigningKey, "resultSigningKey", this.redactor)
        : undefined;
    // One connection per org with its own credentials (one NATS account per org), else the shared one.
    const connections = new Map<string, { nc: NatsConnection; signer: ResultSigner | undefined }>();
    for (const org of options.orgs) {
      const path = org !== undefined ? options.orgCreds[org] : undefined;
      if (path === undefined || org === undefined) {
        if (!this.shared) throw new Error("no shared NATS connection for an org without orgCreds");
        connections.set(org ?? "", {
          nc: this.shared,
          signer: explicitSigner ?? signerFrom(this.sharedCreds),
        });
        continue;
      }
      const creds = await readCredentials(path, `orgCreds.${org}`, this.redactor);
      const nc = await connectNats(options, this.logger.child({ org }), {
        inboxPrefix: workerInboxPrefix([org]),
        creds,
      });
      this.owned.push(nc);
      connections.set(org, { nc, signer: explicitSigner ?? signerFrom(creds) });
    }
    const connectionOf = (org: string | undefined) => {
      const found = connections.get(org ?? "");
      if (!found) throw new Error(`org ${org ?? "(single-tenant)"} is not served by this worker`);
      return found;
    };
    const secretBuckets = new Map<string, Promise<KV>>();
    const getSecret: SecretLookup = async (key, org) => {
      const bucket = codingNames({ ...raw.names, ...(org !== undefined ? { org } : {}) }).kv.secrets;
      let kv = secretBuckets.get(bucket);
      if (!kv) secretBuckets.set(bucket, (kv = new Kvm(connectionOf(org).nc).open(bucket)));
      const entry = await (await kv).get(key);
      return entry && entry.operation === "PUT" ? entry.string() : undefined;
    };
    const workspaces = new WorkspaceManager({
      baseDir: options.workspaceDir,
      cleanupPolicy: options.cleanupPolicy,
      git: options.git,
      maxInputBytes: options.maxInputBytes,
      getSecret,
      secretsBucket: (org) => codingNames({ ...raw.names, ...(org !== undefined ? { org } : {}) }).kv.secrets,
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
      const { nc, signer } = connectionOf(org);
      const js = jetstream(nc);
      const jsm = await jetstreamManager(nc);
      const kvm = new Kvm(nc);
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
        // A worker trusts its own key: a forged "done" result must not make it drop a delivery.
        lookups: await TaskLookups.create(nc, names, {
          jsm,
          trustedSigners: signer ? [signer.publicKey] : [],
          onRejected: (taskID, reason) =>
            logger.warn({ taskID }, `ignoring the stored message on the result subject: ${reason}`),
        }),
        ...(signer ? { signer } : {}),
        ...(this.metrics ? { metrics: this.metrics } : {}),
        taskIndex: new TaskIndex(js, names, {
          onError: (err, taskID) =>
            logger.warn({ err, taskID, bucket: names.kv.tasks }, "could not write the task index record"),
        }),
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
        maxPayload: () => nc.info?.max_payload,
      });
      const cancels = subscribeCancels(nc, names, runner.cancels, logger);
      const advisories = subscribeMaxDeliveries(
        nc,
        names,
        (streamSeq, deliveries) => runner.onMaxDeliveries(streamSeq, deliveries),
        logger,
      );
      const consumer = await js.consumers.get(names.streams.tasks, names.consumer);
      workersBuckets.push(await kvm.open(names.kv.workers));
      this.namespaces.push({ key: org ?? "", nc, names, runner, consumer, cancels, advisories });
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
    if (telemetry && this.metrics && options.metricsListen !== undefined) {
      this.metrics.trackWorkerSlots(options.concurrency, () => this.inFlight.size);
      this.metricsServer = await telemetry.startMetricsServer({
        listen: options.metricsListen,
        metrics: this.metrics,
        health: () => this.health(),
        onError: (err) => this.logger.warn({ err }, "metrics collection failed"),
      });
      this.logger.info({ url: this.metricsServer.url }, "serving /metrics and /healthz");
    }
    this.stateValue = "running";
    await this.beat();
    this.heartbeat = setInterval(() => void this.beat(), options.heartbeatInterval);
    this.watchReconnects();
    this.loops = this.namespaces.map((ns) => this.pullLoop(ns, slots));
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
  private async pullLoop(ns: Namespace, slots: Slots): Promise<void> {
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

  /** Healthy while running or draining with every NATS connection up. */
  health(): HealthReport {
    const connections = new Set(this.namespaces.map((ns) => ns.nc));
    const down = [...connections].filter((nc) => nc.isClosed() || this.disconnected.has(nc)).length;
    if (down > 0) return { healthy: false, detail: `nats: ${down} of ${connections.size} connections down` };
    if (this.stateValue === "stopped" || this.stateValue === "starting") {
      return { healthy: false, detail: `worker ${this.stateValue}` };
    }
    return { healthy: true, detail: `nats: connected; worker ${this.stateValue}` };
  }

  /** Wakes pull loops that back off after failed pulls as soon as the connection is back. */
  private watchReconnects(): void {
    for (const nc of new Set(this.namespaces.map((ns) => ns.nc))) {
      // nats.js's status iterator has stop(), though its declared type does not say so.
      const status = nc.status() as AsyncIterable<Status> & { stop?: () => void };
      this.stopPulling.signal.addEventListener("abort", () => status.stop?.(), { once: true });
      void (async () => {
        for await (const s of status) {
          if (s.type === "disconnect") this.disconnected.add(nc);
          if (s.type !== "reconnect") continue;
          this.disconnected.delete(nc);
          this.reconnected.abort();
          this.reconnected = new AbortController();
        }
      })();
    }
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
    await this.metricsServer?.close();
    this.logger.info({ completed: this.stats.completed, failed: this.stats.failed }, "worker stopped");
  }

  private async closeConnection(): Promise<void> {
    await Promise.all(this.owned.map((nc) => nc.drain().catch(() => nc.close())));
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

/** Who a worker connection authenticates as, and where its replies go. */
interface ConnectionAuth {
  inboxPrefix: string;
  creds?: Uint8Array | undefined;
  user?: string | undefined;
  pass?: string | undefined;
  token?: string | undefined;
}

/** Connects to NATS with the worker's servers and the given credentials. */
async function connectNats(
  options: ResolvedWorkerOptions,
  logger: Logger,
  auth: ConnectionAuth,
): Promise<NatsConnection> {
  const nc = await connect(
    natsConnectOptions({
      servers: options.servers,
      name: `station-coding-worker ${options.workerID}`,
      ...auth,
    }),
  );
  void (async () => {
    for await (const status of nc.status()) {
      if (status.type === "disconnect" || status.type === "reconnect")
        logger.warn({ status: status.type }, "nats connection");
    }
  })();
  return nc;
}

/** Reads a credentials file; its seed becomes a secret the redactor scrubs. */
async function readCredentials(path: string, what: string, redactor: SecretRedactor): Promise<Uint8Array> {
  const contents = await readCredentialsFile(path, what);
  redactor.add(seedFromCredentials(contents));
  return contents;
}

/** The result signer of a credentials file with a user nkey seed, else undefined. */
function signerFrom(creds: Uint8Array | undefined): ResultSigner | undefined {
  const seed = creds ? seedFromCredentials(creds) : undefined;
  return seed !== undefined ? ResultSigner.fromSeed(seed) : undefined;
}

/** The result signer of a seed file given as `what`. */
async function readSigner(path: string, what: string, redactor: SecretRedactor): Promise<ResultSigner> {
  const seed = seedFromCredentials(await readCredentials(path, what, redactor));
  if (seed === undefined) {
    throw new ValidationError(
      what,
      "seed",
      `${what} ${JSON.stringify(path)}: holds no user nkey seed (SU…)`,
      ErrorCodes.InvalidConfig,
    );
  }
  return ResultSigner.fromSeed(seed, what);
}
