/**
 * @packageDocumentation
 * The station-coding worker runtime: consumes coding tasks from NATS JetStream and runs them
 * through an agent driver (OpenCode in production), with leases, live events, cancel, timeout,
 * retries, dead letters and graceful shutdown.
 */

export { EventPublisher } from "./event-publisher.js";
export { LeaseLostError, Leases } from "./lease.js";
export { REDACTED_PATHS, createLogger } from "./logger.js";
export { resolveWorkerOptions } from "./options.js";
export { Presence, WORKER_VERSION } from "./presence.js";
export { SECRET_ENV_VARS, SecretRedactor } from "./redact.js";
export { Slots } from "./slots.js";
export { ShutdownError, TaskRunner } from "./task-runner.js";
export { CodingWorker } from "./worker.js";
export { WorkspaceError, WorkspaceManager, isInside } from "./workspace.js";

export type {
  AgentDriver,
  OpenSessionRequest,
  OpenedSession,
  PromptRequest,
  PromptResult,
} from "./driver.js";
export type { EventPublisherOptions } from "./event-publisher.js";
export type { AcquireOutcome, HeldLease, HeldLock } from "./lease.js";
export type { ResolvedWorkerOptions, WorkerOptions } from "./options.js";
export type { RunnerDeps, RunnerStats } from "./task-runner.js";
export type { PreparedWorkspace } from "./workspace.js";
