import type { JetStreamClient, JetStreamManager } from "@nats-io/jetstream";
import type { KV } from "@nats-io/kv";
import type { NatsConnection } from "@nats-io/transport-node";
import type { Tracer } from "@opentelemetry/api";
import type { CodingNames, TaskLookups } from "@station-coding/protocol";
import type { Logger } from "pino";
import type { ConnectionMonitor } from "./connection-monitor.js";
import type { ResolvedDispatcherOptions } from "./options.js";
import type { ResultWatch } from "./result-watch.js";

/** What task handles and the dispatcher's APIs share: one connection, one namespace. */
export interface DispatcherRuntime {
  readonly nc: NatsConnection;
  readonly js: JetStreamClient;
  readonly jsm: JetStreamManager;
  readonly names: CodingNames;
  readonly lookups: TaskLookups;
  readonly options: ResolvedDispatcherOptions;
  readonly logger: Logger;
  readonly monitor: ConnectionMonitor;
  readonly tracer: Tracer;
  /** Aborted when the dispatcher closes: every wait and iterator ends. */
  readonly closed: AbortSignal;
  /** Opens a KV bucket of the namespace once and keeps it. */
  kv(bucket: string): Promise<KV>;
  /** A new watch for a task's result; the dispatcher stops the listening ones when it closes. */
  watchResult(taskID: string): ResultWatch;
  /** Publishes a cancel request for a task. */
  cancel(taskID: string, reason?: string): Promise<void>;
}
