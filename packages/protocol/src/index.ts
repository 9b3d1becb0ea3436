/**
 * @packageDocumentation
 * The station-coding wire protocol: zod schemas (with inferred types) for every message, the
 * subject and bucket names of each namespace, name validation, typed errors and the JetStream
 * topology both sides share.
 */

export { LimitExceededError, accountLimitError } from "./account-limits.js";
export { ArtifactRef } from "./artifacts.js";
export { formatDuration, parseDuration } from "./duration.js";
export { jsonSchemas } from "./json-schema.js";
export {
  CancelledError,
  ErrorCodes,
  PermissionDeniedError,
  StationError,
  TimeoutError,
  TopologyConflictError,
  ValidationError,
  toWireError,
} from "./errors.js";
export {
  EVENT_TYPES,
  GitInfo,
  PermissionInfo,
  SessionRef,
  StreamEvent,
  ToolInfo,
  WorkspaceInfo,
} from "./events.js";
export {
  MAX_FILE_NAME_LENGTH,
  MAX_NAME_LENGTH,
  fileNameProblem,
  isValidName,
  nameProblem,
  validateFileName,
  validateName,
} from "./names.js";
export {
  AgentContext,
  CancelRequest,
  DeadLetter,
  LeaseState,
  SessionLock,
  SessionState,
  TaskLease,
  WorkerPresence,
  WorkerState,
  cancelRequestFrom,
} from "./records.js";
export { AgentContextStore } from "./context-store.js";
export { DeadLetters } from "./dead-letters.js";
export type { ReplayCredentials } from "./dead-letters.js";
export { casUpdate, decodeEntry, getJson, isCasConflict, storedKeys } from "./kv-json.js";
export { TaskLookups, resultProblem } from "./lookups.js";
export { safeJson, withoutUndefined } from "./plain-data.js";
export { DEFAULT_NATS_URL, natsConnectOptions, natsServers } from "./nats-connect.js";
export { credentialsAuthenticator, readCredentialsFile, seedFromCredentials } from "./nats-credentials.js";
export {
  RESULT_SIGNATURE_HEADER,
  RESULT_SIGNER_HEADER,
  ResultSigner,
  validateSigners,
  verifyResultSignature,
} from "./result-signature.js";
export { SessionStore } from "./session-store.js";
export { ChangedFile, CommitInfo, TaskResult, TaskStatus, TokenUsage } from "./result.js";
export { FileName, Name, parseWith } from "./schema-helpers.js";
export {
  SINGLE_TENANT_ROOT,
  artifactKey,
  codingNames,
  contextKey,
  deadLetterPayloadKey,
  inputKey,
  orgFromSubject,
  patchKey,
  sessionExportKey,
  snapshotKey,
  taskIDFromSubject,
} from "./subjects.js";
export {
  MAX_CANCEL_REASON_LENGTH,
  MAX_COMMIT_MESSAGE_LENGTH,
  MAX_ERROR_BYTES,
  MAX_GIT_ARG_LENGTH,
  MAX_IDENTIFIER_LENGTH,
  MAX_METADATA_BYTES,
  MAX_METADATA_ENTRIES,
  MAX_METADATA_KEY_LENGTH,
  MAX_METADATA_VALUE_LENGTH,
  MAX_PROMPT_BYTES,
  MAX_PROMPT_LENGTH,
  MAX_TIMEOUT_MS,
  cutUtf8,
  messageBudget,
  utf8Length,
} from "./limits.js";
export {
  CleanupPolicy,
  GitSpec,
  Task,
  TaskOp,
  WorkspaceScope,
  parseTask,
  recoverTaskID,
  resolveTask,
} from "./task.js";
export {
  MAX_TASK_LIST_LIMIT,
  TASK_INDEX_ERROR_BYTES,
  TASK_INDEX_PROMPT_LENGTH,
  TaskIndex,
  TaskIndexMetrics,
  TaskIndexRecord,
  TaskIndexStatus,
  TaskIndexView,
  finishedRecord,
  isFinalStatus,
  mergeTaskRecord,
  queuedRecord,
  runningRecord,
} from "./task-index.js";
export {
  DEFAULT_ACK_WAIT_MS,
  ensureTaskConsumer,
  ensureTopology,
  resolveTopologyOptions,
  streamConfigs,
  supportsPerKeyTTL,
  taskConsumerConfig,
} from "./topology.js";

export type { ContextSetOptions } from "./context-store.js";
export type { ErrorCode, StationErrorOptions, WireError } from "./errors.js";
export type { NatsConnectSettings } from "./nats-connect.js";
export type { Versioned } from "./kv-json.js";
export type { TaskLookupsOptions } from "./lookups.js";
export type { ResultAuthenticity } from "./result-signature.js";
export type { EventDraft, StreamEventType } from "./events.js";
export type { CodingNames, CodingNamesOptions } from "./subjects.js";
export type { ResolvedTask, TaskInput } from "./task.js";
export type { TaskIndexOptions, TaskIndexViewOptions, TaskListPage, TaskListQuery } from "./task-index.js";
export type {
  ResolvedTopologyOptions,
  TaskConsumerOptions,
  TopologyOptions,
  TopologyReport,
} from "./topology.js";
