import { ErrorCodes, StationError } from "@station-coding/protocol";

/** Abort reason used when the worker stops and hands a task back for redelivery. */
export class ShutdownError extends StationError {
  override name = "ShutdownError";
  constructor() {
    super(ErrorCodes.Internal, "worker is shutting down; the task is handed back", { retryable: true });
  }
}

/**
 * A task given up for good: it ran out of attempts (a crash counts as one), or the server stopped
 * delivering it (the consumer's max_deliver). Its result says so, and it is dead-lettered.
 */
export class RetriesExhaustedError extends StationError {
  override name = "RetriesExhaustedError";
  constructor(message: string) {
    super(ErrorCodes.RetriesExhausted, message, { retryable: false });
  }
}
