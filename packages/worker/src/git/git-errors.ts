import type { StationErrorOptions } from "@station-coding/protocol";
import { ErrorCodes, StationError } from "@station-coding/protocol";

/** A git URL, ref or path refused by the URL policy before git ran. Never retryable. */
export class GitRefusedError extends StationError {
  override name = "GitRefusedError";
  /** The task field that was refused, e.g. `workspace.git.url`. */
  readonly field: string;
  constructor(field: string, message: string) {
    super(ErrorCodes.GitRefused, message, { retryable: false });
    this.field = field;
  }
}

/** Why a git call failed; decides the error code and whether a retry can help. */
export type GitFailureReason =
  | "unavailable"
  | "timeout"
  | "auth"
  | "repository-not-found"
  | "ref-not-found"
  | "rejected"
  | "conflict"
  | "nothing-to-commit"
  | "output-limit"
  | "failed";

/**
 * A git call that failed. `GIT_UNAVAILABLE` (retryable) for an unreachable host or a time limit,
 * `GIT_AUTH_FAILED` (not retryable) for credentials the host refused or that are missing,
 * `GIT_FAILED` (not retryable) for everything else a retry cannot fix (a missing repository or
 * branch, a rejected push). The message never carries a token.
 */
export class GitError extends StationError {
  override name = "GitError";
  readonly reason: GitFailureReason;
  constructor(reason: GitFailureReason, message: string, options: Pick<StationErrorOptions, "cause"> = {}) {
    const unavailable = reason === "unavailable" || reason === "timeout";
    const code = unavailable
      ? ErrorCodes.GitUnavailable
      : reason === "auth"
        ? ErrorCodes.GitAuthFailed
        : ErrorCodes.GitFailed;
    super(code, message, {
      ...options,
      retryable: unavailable,
    });
    this.reason = reason;
  }
}
