/**
 * Stable codes of {@link NatsServerError}.
 *
 * - `NATS_SERVER_NOT_FOUND`: no binary, no Docker fallback; install nats-server or set NATS_SERVER_BIN.
 * - `NATS_SERVER_INVALID_OPTION`: an option has a value the launcher cannot use.
 * - `NATS_SERVER_PORT_IN_USE`: a fixed port was taken by another process (retrying with other ports helps).
 * - `NATS_SERVER_EXITED`: the server exited before it was ready (its last log lines are in the message).
 * - `NATS_SERVER_START_TIMEOUT`: the server did not become ready in time.
 */
export type NatsServerErrorCode =
  | "NATS_SERVER_NOT_FOUND"
  | "NATS_SERVER_INVALID_OPTION"
  | "NATS_SERVER_PORT_IN_USE"
  | "NATS_SERVER_EXITED"
  | "NATS_SERVER_START_TIMEOUT";

/** Why a test NATS server (or cluster) could not be started. */
export class NatsServerError extends Error {
  override name = "NatsServerError";
  /** What went wrong, stable for tests and retry decisions. */
  readonly code: NatsServerErrorCode;
  /** Whether starting again (with other ports) can help. */
  readonly retryable: boolean;
  /** The last lines the server wrote to stderr, when it was started. */
  readonly serverLog: string;

  constructor(
    code: NatsServerErrorCode,
    message: string,
    options: { cause?: unknown; serverLog?: string } = {},
  ) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.code = code;
    this.retryable = code === "NATS_SERVER_PORT_IN_USE";
    this.serverLog = options.serverLog ?? "";
  }
}
