import { JetStreamApiError } from "@nats-io/jetstream";
import type { JetStreamClient, PubAck } from "@nats-io/jetstream";
import { errors as natsErrors } from "@nats-io/transport-node";
import type { MsgHdrs } from "@nats-io/transport-node";
import { ErrorCodes, PermissionDeniedError, StationError } from "@station-coding/protocol";

/** JetStream's "message size exceeds maximum allowed" (a stream's max_msg_size). */
const JS_MESSAGE_TOO_LARGE = 10054;

/** A message larger than the server's max_payload or the stream's max_msg_size: never retried. */
export class PayloadTooLargeError extends StationError {
  override name = "PayloadTooLargeError";
  constructor(message: string, options: { cause?: unknown } = {}) {
    super(ErrorCodes.PayloadTooLarge, message, { ...options, retryable: false });
  }
}

/**
 * What a failed publish means: too large and permission denied cannot get better by trying again;
 * a timeout, no responders, a lost connection or JetStream answering 503 can. Other JetStream
 * refusals (a 4xx) are not retryable either.
 */
export function publishFailure(err: unknown, subject: string, bytes: number): StationError {
  if (err instanceof StationError) return err;
  if (err instanceof natsErrors.InvalidArgumentError && /max_payload/.test(err.message)) {
    return new PayloadTooLargeError(
      `publish to ${subject}: ${bytes} bytes is over the server's max_payload`,
      { cause: err },
    );
  }
  // A request (which a JetStream publish is) refused by the server comes wrapped in a RequestError.
  if (
    err instanceof natsErrors.PermissionViolationError ||
    (err instanceof natsErrors.RequestError && err.cause instanceof natsErrors.PermissionViolationError)
  ) {
    return new PermissionDeniedError(`publish to ${subject}: not allowed for this NATS user`, { cause: err });
  }
  if (err instanceof JetStreamApiError) {
    if (err.code === JS_MESSAGE_TOO_LARGE) {
      return new PayloadTooLargeError(
        `publish to ${subject}: ${bytes} bytes is over the stream's max_msg_size`,
        {
          cause: err,
        },
      );
    }
    return new StationError(ErrorCodes.Internal, `publish to ${subject}: ${err.message}`, {
      cause: err,
      retryable: err.status === 503,
    });
  }
  const message = err instanceof Error ? err.message : String(err);
  return new StationError(ErrorCodes.Internal, `publish to ${subject}: ${message}`, {
    cause: err,
    retryable: true,
  });
}

/** Options of {@link publishBounded}. */
export interface BoundedPublishOptions {
  headers?: MsgHdrs;
  /** Attempts in all while the failure is retryable. */
  attempts: number;
  /** Wait for each PubAck, in ms. @default 2_000 */
  timeout?: number;
  /** Delay before retry `n` (1-based), in ms. @default min(2_000, 100 * n) */
  backoff?: (retry: number) => number;
  /** Called before each retry (for logging). */
  onRetry?: (error: StationError, attempt: number) => void;
}

/**
 * A JetStream publish that gives up: failures that cannot get better (too large, permission
 * denied) are thrown at once, others are retried at most `attempts` times in all. The headers
 * (e.g. `Nats-Msg-Id`) are the same on every attempt, so a retry after a lost PubAck is dropped
 * by the stream as a duplicate.
 *
 * @throws StationError from {@link publishFailure}, with `retryable` saying whether a later try
 * could succeed.
 */
export async function publishBounded(
  js: JetStreamClient,
  subject: string,
  data: string | Uint8Array,
  options: BoundedPublishOptions,
): Promise<PubAck> {
  const bytes = typeof data === "string" ? Buffer.byteLength(data) : data.byteLength;
  const backoff = options.backoff ?? ((retry: number) => Math.min(2_000, 100 * retry));
  for (let attempt = 1; ; attempt += 1) {
    try {
      return await js.publish(subject, data, {
        ...(options.headers ? { headers: options.headers } : {}),
        timeout: options.timeout ?? 2_000,
      });
    } catch (err) {
      const failure = publishFailure(err, subject, bytes);
      if (!failure.retryable || attempt >= options.attempts) throw failure;
      options.onRetry?.(failure, attempt);
      await new Promise((resolve) => setTimeout(resolve, backoff(attempt)));
    }
  }
}
