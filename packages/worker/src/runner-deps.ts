import type { JetStreamClient, JetStreamManager } from "@nats-io/jetstream";
import type { ObjectStore } from "@nats-io/obj";
import type { Tracer } from "@opentelemetry/api";
import type {
  CodingNames,
  DeadLetters,
  ResultSigner,
  SessionStore,
  TaskIndex,
  TaskLookups,
} from "@station-coding/protocol";
import type { StationMetrics } from "@station-coding/telemetry/metrics";
import type { Logger } from "pino";
import type { Leases } from "./lease.js";
import type { ResolvedWorkerOptions } from "./options.js";
import type { AgentDriver } from "./shared/driver.js";
import type { SecretRedactor } from "./shared/redact.js";
import type { WorkspaceManager } from "./workspace/workspace.js";

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
  /** The task index: `running` when a run starts, the final state with the result (best effort). */
  taskIndex: TaskIndex;
  deadLetters: DeadLetters;
  /** Counts each published result (`--metrics-listen`); undefined when nobody serves metrics. */
  metrics?: StationMetrics;
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

/**
 * Runs the worker's own work in a workspace while no tool call of any task runs there (the
 * driver's exclusion, see `AgentDriver.holdWorkspace`): git and the file walks of collecting
 * changes follow paths, and a link another task's agent swaps meanwhile must not redirect them.
 */
export function exclusively<T>(
  driver: AgentDriver,
  directory: string,
  work: () => Promise<T>,
  options: { signal?: AbortSignal; maxWait?: number },
): Promise<T> {
  return driver.holdWorkspace ? driver.holdWorkspace(directory, work, options) : work();
}
