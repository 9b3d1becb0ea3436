import { JetStreamApiError } from "@nats-io/jetstream";
import { ErrorCodes, StationError } from "./errors.js";
import type { StationErrorOptions } from "./errors.js";

/** The org (NATS account) reached one of its limits; retrying helps only once space is freed. */
export class LimitExceededError extends StationError {
  override name = "LimitExceededError";
  /** The limit that was reached, as the org tool names it (`max-storage`, `max-streams`, …). */
  readonly limit: string;
  constructor(limit: string, message: string, options: StationErrorOptions = {}) {
    super(ErrorCodes.LimitExceeded, message, { retryable: false, ...options });
    this.limit = limit;
  }
}

/** JetStream API error codes of account limits, and the org tool flag that raises each. */
const LIMIT_CODES: Record<number, { limit: string; what: string }> = {
  10002: { limit: "max-storage", what: "JetStream storage limit (max-storage / max-memory)" },
  10047: { limit: "max-storage", what: "JetStream storage limit (max-storage)" },
  10023: { limit: "max-storage", what: "JetStream storage limit (max-storage)" },
  10027: { limit: "max-streams", what: "stream limit (max-streams)" },
  10026: { limit: "max-consumers", what: "consumer limit (max-consumers)" },
};

/**
 * A {@link LimitExceededError} for `err` when it is the server refusing an operation because the
 * account (the org) is at one of its limits, else undefined. The message names the limit and how
 * to raise it.
 */
export function accountLimitError(what: string, err: unknown, org?: string): LimitExceededError | undefined {
  if (!(err instanceof JetStreamApiError)) return undefined;
  const known = LIMIT_CODES[err.code];
  if (!known) return undefined;
  const who = org !== undefined ? `org ${org}` : "this NATS account";
  return new LimitExceededError(
    known.limit,
    `${what}: ${who} reached its ${known.what}: ${err.message}. Free space (delete artifacts, ` +
      `sessions or old results) or raise it: station-coding org limits ${org ?? "<org>"} --${known.limit} <value>`,
    { cause: err },
  );
}
