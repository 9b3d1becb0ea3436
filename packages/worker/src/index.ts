/**
 * @packageDocumentation
 * The station-coding worker runtime: consumes coding tasks from NATS JetStream and runs them
 * through an agent driver (OpenCode in production), with leases, live events, cancel, timeout,
 * retries, dead letters and graceful shutdown.
 *
 * This is the public API: the worker, its options, the OpenCode driver and the contract of any other
 * agent driver. Tests and benchmarks reach the runtime's parts through `@station-coding/worker/internal`,
 * which is not a stable API.
 */

export { createLogger } from "./logger.js";
export { OpenCodeDriver, stationToolsPluginPath } from "./opencode/opencode-driver.js";
export { mergeConfig } from "./opencode/opencode-server.js";
export { allowAllPolicy, workspaceOnlyPolicy } from "./opencode/permission-policy.js";
export { parseSandboxOptions } from "./sandbox/sandbox.js";
export { resolveWorkerOptions } from "./options.js";
export { SecretRedactor } from "./shared/redact.js";
export { CodingWorker } from "./worker.js";

export type { OpenCodeDriverOptions } from "./opencode/opencode-driver.js";
export type { OpenCodeServer, OpenCodeServerOptions } from "./opencode/opencode-server.js";
export type { PermissionAsk, PermissionDecision, PermissionPolicy } from "./opencode/permission-policy.js";
export type { ResolvedWorkerOptions, WorkerOptions } from "./options.js";
export type { NetworkPolicy, SandboxMode, SandboxOptions } from "./sandbox/sandbox.js";
export type {
  AgentDriver,
  DriverRuntime,
  OpenSessionRequest,
  OpenedSession,
  PromptRequest,
  PromptResult,
} from "./shared/driver.js";
export type { WorkspaceGitOptions } from "./workspace/workspace.js";
