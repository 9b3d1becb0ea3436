/**
 * Stable error codes carried on the wire in a result's `errorCode`.
 *
 * A code never changes meaning once published; new failures get new codes.
 */
export const ErrorCodes = {
  /** A name (org, taskID, session, workspace, artifact file) breaks a naming rule. */
  InvalidName: "INVALID_NAME",
  /** A task message is not JSON or does not match the task schema. */
  InvalidTask: "INVALID_TASK",
  /** An option or configuration value is invalid. */
  InvalidConfig: "INVALID_CONFIG",
  /** An existing stream, bucket or consumer has a configuration that conflicts with ours. */
  TopologyConflict: "TOPOLOGY_CONFLICT",
  /** The task was cancelled by a cancel request. */
  Cancelled: "CANCELLED",
  /** The task ran past its time limit. */
  Timeout: "TIMEOUT",
  /** The coding agent reported a failure (a provider error, a failed turn). */
  AgentError: "AGENT_ERROR",
  /** The task names a model or provider the agent does not have; the message lists those it has. */
  ModelNotFound: "MODEL_NOT_FOUND",
  /** The task names an agent that does not exist; the message lists those that do. */
  AgentNotFound: "AGENT_NOT_FOUND",
  /** The agent or its server could not be reached or broke the connection. */
  AgentUnavailable: "AGENT_UNAVAILABLE",
  /** The workspace could not be prepared (bad path, escape attempt, I/O failure). */
  WorkspaceError: "WORKSPACE_ERROR",
  /** A git operation failed in a way that retrying can fix (unreachable host, time limit). */
  GitUnavailable: "GIT_UNAVAILABLE",
  /** A git operation failed in a way that retrying cannot fix (auth, missing repository or branch). */
  GitFailed: "GIT_FAILED",
  /** The git host refused the credentials (a wrong, expired or under-scoped token). Not retryable. */
  GitAuthFailed: "GIT_AUTH_FAILED",
  /** A git URL or ref was refused by the URL policy. */
  GitRefused: "GIT_REFUSED",
  /** A staged input or output artifact could not be read or written. */
  ArtifactError: "ARTIFACT_ERROR",
  /** The task was retried the maximum number of times. */
  RetriesExhausted: "RETRIES_EXHAUSTED",
  /** The NATS server refused an operation for lack of permission. */
  PermissionDenied: "PERMISSION_DENIED",
  /** The org reached one of its NATS limits (JetStream storage, streams, consumers, connections). */
  LimitExceeded: "LIMIT_EXCEEDED",
  /** The worker lost its lease on the task (another worker owns it now). */
  LeaseLost: "LEASE_LOST",
  /**
   * The task's result did not fit in a message (the server's max_payload) even with its text cut;
   * the whole result is in the object store (`fullResult`).
   */
  ResultTooLarge: "RESULT_TOO_LARGE",
  /** A message was larger than the server's max_payload or a stream's max_msg_size. */
  PayloadTooLarge: "PAYLOAD_TOO_LARGE",
  /** A client-side wait ran out before the task finished. */
  WaitTimeout: "WAIT_TIMEOUT",
  /** The OS sandbox for the agent's tools cannot start here (no bubblewrap, no user namespaces). */
  SandboxUnavailable: "SANDBOX_UNAVAILABLE",
  /** Anything else: a bug or an unexpected failure. */
  Internal: "INTERNAL",
} as const;

/** One of {@link ErrorCodes}. */
export type ErrorCode = (typeof ErrorCodes)[keyof typeof ErrorCodes];

/** Options common to every {@link StationError}. */
export interface StationErrorOptions {
  cause?: unknown;
  /** Override whether retrying can help. */
  retryable?: boolean;
}

/**
 * Base of every error station-coding raises on purpose.
 *
 * It has a stable `code` and says whether retrying can help (`retryable`); on the wire it
 * becomes data (`error`, `errorType`, `errorCode`, `retryable`), never a serialized class.
 */
export class StationError extends Error {
  override name = "StationError";
  readonly code: ErrorCode;
  readonly retryable: boolean;

  constructor(code: ErrorCode, message: string, options: StationErrorOptions = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.code = code;
    this.retryable = options.retryable ?? false;
  }
}

/** A value broke a validation rule; `field` names it (e.g. `session.name`) and `rule` says how. */
export class ValidationError extends StationError {
  override name = "ValidationError";
  readonly field: string;
  readonly rule: string;

  constructor(field: string, rule: string, message: string, code: ErrorCode = ErrorCodes.InvalidName) {
    super(code, message);
    this.field = field;
    this.rule = rule;
  }
}

/** An existing stream, bucket or consumer differs from the configuration we need. */
export class TopologyConflictError extends StationError {
  override name = "TopologyConflictError";
  /** One entry per difference, e.g. `stream CODING_TASKS: retention is "limits", expected "workqueue"`. */
  readonly differences: string[];

  constructor(differences: string[]) {
    super(
      ErrorCodes.TopologyConflict,
      `existing JetStream configuration conflicts with station-coding's: ${differences.join("; ")}. ` +
        "Fix or remove the named stream or bucket (nothing was changed).",
    );
    this.differences = differences;
  }
}

/** The task was cancelled. */
export class CancelledError extends StationError {
  override name = "CancelledError";
  constructor(message = "task cancelled", options: StationErrorOptions = {}) {
    super(ErrorCodes.Cancelled, message, options);
  }
}

/** The task ran out of time. */
export class TimeoutError extends StationError {
  override name = "TimeoutError";
  constructor(message: string, options: StationErrorOptions = {}) {
    super(ErrorCodes.Timeout, message, options);
  }
}

/** The NATS server refused an operation for lack of permission. */
export class PermissionDeniedError extends StationError {
  override name = "PermissionDeniedError";
  constructor(message: string, options: StationErrorOptions = {}) {
    super(ErrorCodes.PermissionDenied, message, options);
  }
}

/** Wire form of an error: what a result carries. */
export interface WireError {
  error: string;
  errorType: string;
  errorCode: ErrorCode;
  retryable: boolean;
}

/** Turns any thrown value into its wire form; unknown errors become `INTERNAL`, not retryable. */
export function toWireError(err: unknown): WireError {
  if (err instanceof StationError) {
    return { error: err.message, errorType: err.name, errorCode: err.code, retryable: err.retryable };
  }
  if (err instanceof Error) {
    return { error: err.message, errorType: err.name, errorCode: ErrorCodes.Internal, retryable: false };
  }
  return { error: String(err), errorType: "Error", errorCode: ErrorCodes.Internal, retryable: false };
}
