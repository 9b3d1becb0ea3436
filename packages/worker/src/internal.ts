/**
 * @packageDocumentation
 * `@station-coding/worker/internal`: the public entry plus the worker's parts one by one, for its
 * own tests, the other packages' tests and the benchmarks (as nats.js keeps `internal_mod.ts`
 * beside `mod.ts`). Not a stable API: what is here follows the layout (docs/layout.md). Library
 * code and users import `@station-coding/worker`.
 */

export * from "./index.js";

// The runtime (src/*.ts)
export { TaskCancels, subscribeCancels } from "./cancel.js";
export { deadLetterRecord, writeDeadLetter } from "./dead-letter.js";
export { TaskDeliveries, terminate } from "./delivery.js";
export { EventPublisher, lastEventSeq } from "./event-publisher.js";
export { fitJson } from "./fit-message.js";
export { LeaseLostError, Leases } from "./lease.js";
export { REDACTED_PATHS } from "./logger.js";
export { onMaxDeliveries, subscribeMaxDeliveries } from "./max-deliveries.js";
export { workerInboxPrefix } from "./options.js";
export { Presence, WORKER_VERSION } from "./presence.js";
export { PayloadTooLargeError, publishBounded, publishFailure } from "./publish.js";
export { ResultPublisher } from "./result-publisher.js";
export { recordSession } from "./session-record.js";
export { Slots } from "./slots.js";
export { TaskArtifacts } from "./task-artifacts.js";
export { runOp } from "./task-ops.js";
export { TaskOutcomes, buildResult, runEnd, statusOf } from "./task-outcome.js";
export { RetriesExhaustedError, ShutdownError } from "./errors.js";
export { LeaseKeepAlive } from "./lease-keepalive.js";
export { TaskRunner } from "./task-runner.js";
// opencode/
export { resolveOpenCodeDriverOptions } from "./opencode/opencode-driver.js";
export { TurnEventMapper } from "./opencode/opencode-events.js";
export { OpenCodeServer, bundledOpenCodeBin } from "./opencode/opencode-server.js";
export { StationToolsBridge } from "./opencode/station-tools-bridge.js";
export { summarizeTurn } from "./opencode/turn-summary.js";
// sandbox/
export {
  CALL_ENV,
  NetworkPolicy,
  SandboxMode,
  SandboxOptions,
  resolveSandbox,
  serverSandboxArgs,
  shellScript,
  systemLayout,
  toolSandboxArgs,
  WORKSPACE_ENV,
  writeShellScript,
} from "./sandbox/sandbox.js";
export { NetworkGate, SandboxProxy } from "./sandbox/sandbox-network.js";
export { checkInside, checkToolCall, resolveRealPath, toolPaths } from "./sandbox/tool-guard.js";
export { callMarker, killCallProcesses } from "./sandbox/tool-processes.js";
export {
  HoldAbandonedError,
  WorkspaceExclusion,
  holdKey,
  parseHoldKey,
  toolHoldMode,
} from "./sandbox/workspace-exclusion.js";
// workspace/
export { collectChanges, parseChangedFiles } from "./workspace/changes.js";
export { DEFAULT_MAX_INPUT_BYTES, stageInputs } from "./workspace/input-files.js";
export { snapshotWorkspace } from "./workspace/snapshot.js";
export { WorkspaceManager, defaultWorkspaceDir, isInside } from "./workspace/workspace.js";
export { ArtifactError, WorkspaceError } from "./workspace/workspace-errors.js";
// git/
export { GIT_TIMEOUTS, Git, RepoState, classifyGitFailure, commandOverrides, gitCall } from "./git/git.js";
export { Askpass, GitCredentials } from "./git/git-credentials.js";
export { GitError, GitRefusedError } from "./git/git-errors.js";
export { commitChanges, pushBranch } from "./git/git-publish.js";
export { checkRemote, cloneRepository, sameRepositoryUrl, updateRepository } from "./git/git-sync.js";
export { checkGitUrl, checkRefName, checkRemoteName, checkSparsePath } from "./git/url-policy.js";
// shared/
export { SECRET_ENV_VARS } from "./shared/redact.js";

export type { DeadLetterEntry, DeadLetterSource } from "./dead-letter.js";
export type { EventPublisherOptions } from "./event-publisher.js";
export type { AcquireOutcome, HeldLease, HeldLock } from "./lease.js";
export type { KeepAliveOptions } from "./lease-keepalive.js";
export type { RunnerDeps, RunnerStats } from "./runner-deps.js";
export type { SessionRun } from "./session-record.js";
export type { MaxDeliveriesContext } from "./max-deliveries.js";
export type { OpContext, RunProducts } from "./task-ops.js";
export type { FinishedRun, ResultParts, RunEnd } from "./task-outcome.js";
export type { ResolvedOpenCodeDriverOptions } from "./opencode/opencode-driver.js";
export type { OpenCodeEvent, OutputSink } from "./opencode/opencode-events.js";
export type { StationToolsHandler, ToolGuard, ToolScope } from "./opencode/station-tools-bridge.js";
export type { MessageInfo, MessageWithParts } from "./opencode/turn-summary.js";
export type { ResolvedSandbox, ShellScriptOptions, SystemLayout } from "./sandbox/sandbox.js";
export type { NetworkDecision, Resolver } from "./sandbox/sandbox-network.js";
export type { RealPath } from "./sandbox/tool-guard.js";
export type { HoldMode, HoldRequest } from "./sandbox/workspace-exclusion.js";
export type { CollectChangesOptions, WorkspaceChanges } from "./workspace/changes.js";
export type { InputFile, StageInputsOptions } from "./workspace/input-files.js";
export type { SnapshotOptions } from "./workspace/snapshot.js";
export type {
  FinishOutcome,
  GitContext,
  PreparedWorkspace,
  WorkspaceManagerOptions,
} from "./workspace/workspace.js";
export type { GitCall, GitOutput, GitRunnerOptions } from "./git/git.js";
export type { GitCredentialOptions, GitToken, SecretLookup } from "./git/git-credentials.js";
export type { GitFailureReason } from "./git/git-errors.js";
export type { CommitOptions, GitAuthor, PushInfo, PushOptions } from "./git/git-publish.js";
export type { SyncContext, SyncState } from "./git/git-sync.js";
export type { CheckedGitUrl, GitTransport, UrlPolicyOptions } from "./git/url-policy.js";
