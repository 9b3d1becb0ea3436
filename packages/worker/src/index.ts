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
export {
  NetworkPolicy,
  SandboxMode,
  SandboxOptions,
  parseSandboxOptions,
  resolveSandbox,
  shellScript,
  systemLayout,
  writeShellScript,
} from "./sandbox.js";
export { NetworkGate, SandboxProxy } from "./sandbox-network.js";
export { checkInside, checkToolCall, resolveRealPath } from "./tool-guard.js";
export { SECRET_ENV_VARS, SecretRedactor } from "./redact.js";
export { Slots } from "./slots.js";
export { StationToolsBridge } from "./station-tools-bridge.js";
export { ShutdownError, TaskRunner } from "./task-runner.js";
export { CodingWorker } from "./worker.js";
export { WorkspaceManager, isInside } from "./workspace.js";
export { collectChanges, parseChangedFiles } from "./changes.js";
export { Git, RepoState, classifyGitFailure } from "./git.js";
export { Askpass, GitCredentials } from "./git-credentials.js";
export { commitChanges, pushBranch } from "./git-publish.js";
export { checkRemote, cloneRepository, sameRepositoryUrl, updateRepository } from "./git-sync.js";
export { stageInputs } from "./input-files.js";
export { snapshotWorkspace } from "./snapshot.js";
export { checkGitUrl, checkRefName, checkRemoteName, checkSparsePath } from "./url-policy.js";
export { ArtifactError, GitError, GitRefusedError, WorkspaceError } from "./workspace-errors.js";

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
export type { ResolvedSandbox, ShellScriptOptions, SystemLayout } from "./sandbox.js";
export type { NetworkDecision, Resolver } from "./sandbox-network.js";
export type { RealPath } from "./tool-guard.js";
export type {
  GuardedCall,
  StationToolsHandler,
  ToolGuard,
  ToolRelease,
  ToolScope,
} from "./station-tools-bridge.js";
export type { RunnerDeps, RunnerStats } from "./task-runner.js";
export type { CollectChangesOptions, WorkspaceChanges } from "./changes.js";
export type { GitCall, GitOutput, GitRunnerOptions } from "./git.js";
export type { GitCredentialOptions, GitToken, SecretLookup } from "./git-credentials.js";
export type { CommitOptions, GitAuthor, PushInfo, PushOptions } from "./git-publish.js";
export type { SyncContext, SyncState } from "./git-sync.js";
export type { InputFile, StageInputsOptions } from "./input-files.js";
export type { SnapshotOptions } from "./snapshot.js";
export type { CheckedGitUrl, GitTransport, UrlPolicyOptions } from "./url-policy.js";
export type { GitFailureReason } from "./workspace-errors.js";
export type {
  FinishOutcome,
  GitContext,
  PreparedWorkspace,
  WorkspaceGitOptions,
  WorkspaceManagerOptions,
} from "./workspace.js";
