/**
 * @packageDocumentation
 * The station-coding worker runtime: consumes coding tasks from NATS JetStream and runs them
 * through an agent driver (OpenCode in production), with leases, live events, cancel, timeout,
 * retries, dead letters and graceful shutdown.
 */

export { EventPublisher } from "./event-publisher.js";
export { LeaseLostError, Leases } from "./lease.js";
export { REDACTED_PATHS, createLogger } from "./logger.js";
export { OpenCodeDriver, stationToolsPluginPath } from "./opencode-driver.js";
export { TurnEventMapper } from "./opencode-events.js";
export { OpenCodeServer, bundledOpenCodeBin, mergeConfig } from "./opencode-server.js";
export { resolveWorkerOptions } from "./options.js";
export { allowAllPolicy, workspaceOnlyPolicy } from "./permission-policy.js";
export { Presence, WORKER_VERSION } from "./presence.js";
export { SECRET_ENV_VARS, SecretRedactor } from "./redact.js";
export { Slots } from "./slots.js";
export { StationToolsBridge } from "./station-tools-bridge.js";
export { ShutdownError, TaskRunner } from "./task-runner.js";
export { CodingWorker } from "./worker.js";
export { WorkspaceError, WorkspaceManager, isInside } from "./workspace.js";

export type {
  AgentDriver,
  DriverRuntime,
  OpenSessionRequest,
  OpenedSession,
  PromptRequest,
  PromptResult,
} from "./driver.js";
export type { EventPublisherOptions } from "./event-publisher.js";
export type { AcquireOutcome, HeldLease, HeldLock } from "./lease.js";
export type { OpenCodeDriverOptions } from "./opencode-driver.js";
export type { OpenCodeEvent, OutputSink } from "./opencode-events.js";
export type { OpenCodeServerOptions } from "./opencode-server.js";
export type { ResolvedWorkerOptions, WorkerOptions } from "./options.js";
export type { PermissionAsk, PermissionDecision, PermissionPolicy } from "./permission-policy.js";
export type { StationToolsHandler, ToolScope } from "./station-tools-bridge.js";
export type { RunnerDeps, RunnerStats } from "./task-runner.js";
export type { PreparedWorkspace } from "./workspace.js";
