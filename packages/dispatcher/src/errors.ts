import { PermissionViolationError, errors as natsErrors } from "@nats-io/transport-node";
import type { TaskLease } from "@station-coding/protocol";
import { ErrorCodes, PermissionDeniedError, StationError, accountLimitError } from "@station-coding/protocol";

/** Where a task stood when a client-side wait ran out. */
export type TaskPhase = "queued" | "running" | "retrying" | "finished" | "unknown";

/**
 * A client-side wait (`TaskHandle.result({ timeout })`) ran out before the task finished.
 *
 * The task itself goes on; `phase` says whether it was still queued or running (and on which
 * worker), so the caller can decide to wait longer or cancel it.
 */
export class WaitTimeoutError extends StationError {
  override name = "WaitTimeoutError";
  /** The task waited for. */
  readonly taskID: string;
  /** Milliseconds waited. */
  readonly waited: number;
  /** Where the task stood when the wait ran out. */
  readonly phase: TaskPhase;
  /** The worker running the task, when it is running. */
  readonly workerID: string | undefined;
  /** The task's lease record, when it has one. */
  readonly lease: TaskLease | undefined;

  constructor(
    taskID: string,
    waited: number,
    phase: TaskPhase,
    detail: string,
    lease?: TaskLease,
    options: { cause?: unknown } = {},
  ) {
    super(ErrorCodes.WaitTimeout, `task ${taskID}: no result after waiting ${waited}ms; ${detail}`, {
      ...options,
      retryable: true,
    });
    this.taskID = taskID;
    this.waited = waited;
    this.phase = phase;
    this.lease = lease;
    this.workerID = phase === "running" ? lease?.workerID : undefined;
  }
}

/**
 * Turns anything thrown by the NATS client into a {@link StationError} whose message says what was
 * being done: permission violations become {@link PermissionDeniedError} naming the subject,
 * request timeouts say how long was waited. Station errors pass through unchanged.
 */
export function toStationError(what: string, err: unknown, org?: string): StationError {
  if (err instanceof StationError) return err;
  const limit = accountLimitError(what, err, org);
  if (limit) return limit;
  if (err instanceof PermissionViolationError) {
    return permissionDenied(what, err);
  }
  const message = err instanceof Error ? err.message : String(err);
  if (err instanceof Error && err.cause instanceof PermissionViolationError) {
    return permissionDenied(what, err.cause);
  }
  if (/permission|authorization violation/i.test(message)) {
    return new PermissionDeniedError(
      `${what}: permission denied (${message}); check the NATS user's permissions`,
      { cause: err },
    );
  }
  if (err instanceof natsErrors.TimeoutError) {
    return new StationError(ErrorCodes.Internal, `${what}: the NATS server did not answer in time`, {
      cause: err,
      retryable: true,
    });
  }
  return new StationError(ErrorCodes.Internal, `${what}: ${message}`, { cause: err, retryable: true });
}

function permissionDenied(what: string, err: PermissionViolationError): PermissionDeniedError {
  const action = err.operation === "publish" ? "publish to" : "subscribe to";
  return new PermissionDeniedError(
    `${what}: permission denied to ${action} "${err.subject}"; grant the NATS user this right or use other credentials`,
    { cause: err },
  );
}

/** Runs `fn` and rethrows its failure as a {@link StationError} describing `what`. */
export async function guarded<T>(what: string, fn: () => Promise<T>, org?: string): Promise<T> {
  try {
    return await fn();
  } catch (err) {
    throw toStationError(what, err, org);
  }
}
