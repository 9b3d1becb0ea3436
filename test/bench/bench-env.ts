// One isolated system under measurement: a fresh nats-server (temp store), dispatchers, in-process
// workers with the scripted driver, and raw NATS connections for the baselines, all closed together.
import { rm } from "node:fs/promises";
import { connect } from "@nats-io/transport-node";
import type { NatsConnection } from "@nats-io/transport-node";
import { CodingDispatcher } from "@station-coding/dispatcher";
import type { DispatcherOptions } from "@station-coding/dispatcher";
import type { TaskResult } from "@station-coding/protocol";
import { NatsServer, tempDir } from "@station-coding/testkit";
import { CodingWorker } from "@station-coding/worker";
import type { WorkerOptions } from "@station-coding/worker";
import { ScriptedDriver } from "@station-coding/testkit/worker";

/**
 * A pino destination that drops log lines (the worker still formats them, as in production) but
 * keeps the last warnings and errors, so a broken scenario can show what the worker said.
 */
export class LogSink {
  private readonly kept: string[] = [];

  write(line: string): void {
    // pino levels: 40 warn, 50 error, 60 fatal.
    if (/"level":(4|5|6)0/.test(line)) {
      this.kept.push(line.trimEnd());
      if (this.kept.length > 50) this.kept.shift();
    }
  }

  /** The last warnings and errors. */
  get problems(): readonly string[] {
    return this.kept;
  }
}

/** Warnings and errors of the workers of every environment closed since the last call. */
const problems: string[] = [];

/** The workers' warnings and errors collected since the last call (for the report of a broken scenario). */
export function takeWorkerProblems(): string[] {
  return problems.splice(0);
}

/** Worker options every benchmark uses unless a scenario overrides them. */
export interface BenchWorkerOptions extends Partial<WorkerOptions> {
  driver?: WorkerOptions["driver"];
}

/**
 * A fresh nats-server with dispatchers, in-process workers and raw connections on it.
 *
 * Workers delete a workspace after a completed task (`cleanupPolicy: "on_success"`) so that
 * thousands of no-op tasks do not leave thousands of git repositories behind, log at `info` into a
 * {@link LogSink}, and pull with `pullExpires: 1s` so that stopping one does not wait out a 5 s pull.
 */
export class BenchEnv implements AsyncDisposable {
  readonly logs = new LogSink();
  private readonly workers: CodingWorker[] = [];
  private readonly dispatchers: CodingDispatcher[] = [];
  private readonly connections: NatsConnection[] = [];
  private readonly cleanups: (() => Promise<void>)[] = [];

  private constructor(
    readonly server: NatsServer,
    readonly workspaceDir: string,
  ) {}

  /** Starts a nats-server with JetStream on a free port and a temp store. */
  static async start(): Promise<BenchEnv> {
    const server = await NatsServer.start();
    return new BenchEnv(server, await tempDir("bench-ws"));
  }

  /** The server URL. */
  get url(): string {
    return this.server.url;
  }

  /** A plain NATS connection (for baselines), closed with the environment. */
  async connect(name = "bench-raw"): Promise<NatsConnection> {
    const nc = await connect({ servers: this.url, name });
    this.connections.push(nc);
    return nc;
  }

  /** A dispatcher that creates the namespace's topology. */
  async dispatcher(options: Partial<DispatcherOptions> = {}): Promise<CodingDispatcher> {
    const dispatcher = await CodingDispatcher.connect({ servers: this.url, ...options });
    this.dispatchers.push(dispatcher);
    return dispatcher;
  }

  /** Options of a benchmark worker (also used for child-process workers). */
  workerOptions(overrides: Partial<WorkerOptions> = {}): Omit<WorkerOptions, "driver"> {
    return {
      servers: this.url,
      workspaceDir: this.workspaceDir,
      cleanupPolicy: "on_success",
      pullExpires: "1s",
      logLevel: "info",
      ...overrides,
    };
  }

  /** Starts an in-process worker (scripted driver unless one is given). */
  async worker(options: BenchWorkerOptions = {}): Promise<CodingWorker> {
    const { driver, ...overrides } = options;
    const worker = await CodingWorker.start({
      ...this.workerOptions(overrides),
      logDestination: overrides.logDestination ?? this.logs,
      driver: driver ?? new ScriptedDriver(),
    });
    this.workers.push(worker);
    return worker;
  }

  /** Stops every worker started so far (in parallel). */
  async stopWorkers(): Promise<void> {
    const workers = this.workers.splice(0);
    await Promise.all(workers.map((w) => w.stop()));
  }

  /** Runs `cleanup` when the environment closes (before the server stops). */
  defer(cleanup: () => Promise<void>): void {
    this.cleanups.push(cleanup);
  }

  /** Stops workers, closes dispatchers and connections, stops the server, removes temp dirs. */
  async close(): Promise<void> {
    await this.stopWorkers().catch(() => undefined);
    for (const cleanup of this.cleanups.splice(0).reverse()) await cleanup().catch(() => undefined);
    await Promise.all(this.dispatchers.splice(0).map((d) => d.close().catch(() => undefined)));
    await Promise.all(this.connections.splice(0).map((nc) => nc.close().catch(() => undefined)));
    await this.server.stop();
    await rm(this.workspaceDir, { recursive: true, force: true });
    problems.push(...this.logs.problems);
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.close();
  }
}

/** Throws unless the task completed, quoting its error. */
export function expectStatus(result: TaskResult, status: TaskResult["status"] = "completed"): TaskResult {
  if (result.status !== status) {
    throw new Error(
      `task ${result.taskID}: expected status ${status}, got ${result.status}` +
        (result.error ? ` (${result.errorCode ?? ""}: ${result.error})` : ""),
    );
  }
  return result;
}

/** Rejects with a message naming `what` when `work` takes longer than `ms`. */
export async function within<T>(ms: number, what: string, work: Promise<T>): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const limit = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what}: did not finish within ${ms} ms`)), ms);
  });
  try {
    return await Promise.race([work, limit]);
  } finally {
    clearTimeout(timer);
  }
}

/** Runs `job` for every item with at most `limit` running at once; results in input order. */
export async function pool<T, R>(
  items: readonly T[],
  limit: number,
  job: (item: T) => Promise<R>,
): Promise<R[]> {
  const out = new Array<R>(items.length);
  let next = 0;
  const lanes = Array.from({ length: Math.min(limit, items.length) }, async () => {
    while (next < items.length) {
      const i = next++;
      out[i] = await job(items[i]!);
    }
  });
  await Promise.all(lanes);
  return out;
}

let taskCounter = 0;

/** A task id unique within this run: `<prefix>-<n>`. */
export function taskID(prefix: string): string {
  taskCounter += 1;
  return `${prefix}-${taskCounter}`;
}

export { ScriptedDriver };
export { script } from "@station-coding/testkit/worker";
