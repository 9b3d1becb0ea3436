import { setTimeout as delay } from "node:timers/promises";
import { inspect } from "node:util";

/** Options of {@link waitFor}. */
export interface WaitForOptions {
  /**
   * How long to keep trying, in milliseconds.
   * @default 10_000
   */
  timeout?: number;
  /**
   * Pause between two attempts, in milliseconds.
   * @default 25
   */
  interval?: number;
  /**
   * What is being waited for, named in the timeout error (`"stream TASKS has 3 messages"`).
   * @default "condition"
   */
  message?: string;
  /** Stops waiting early (checked between attempts): the promise rejects with the signal's reason. */
  signal?: AbortSignal;
}

/** The error {@link waitFor} rejects with when its condition did not hold in time; `cause` is the last error. */
export class WaitForTimeoutError extends Error {
  override name = "WaitForTimeoutError";
  /** Stable code, for tests that check it. */
  readonly code = "WAIT_FOR_TIMEOUT";
  /** How many times the condition was evaluated. */
  readonly attempts: number;

  constructor(message: string, attempts: number, cause: unknown) {
    super(message, cause === undefined ? undefined : { cause });
    this.attempts = attempts;
  }
}

const attemptTimedOut = Symbol("attemptTimedOut");

/** Runs one attempt, giving up on it (not cancelling it) when the deadline passes first. */
async function attempt<T>(fn: () => T | Promise<T>, remaining: number): Promise<T | typeof attemptTimedOut> {
  const timer = new AbortController();
  try {
    return await Promise.race([
      Promise.resolve().then(fn),
      delay(Math.max(remaining, 0), attemptTimedOut, { signal: timer.signal }),
    ]);
  } finally {
    timer.abort();
  }
}

function describe(value: unknown): string {
  return inspect(value, { depth: 2, breakLength: Infinity });
}

function describeError(err: unknown): string {
  return err instanceof Error ? `${err.name}: ${err.message}` : describe(err);
}

/** The values `waitFor` waits past. */
export type Falsy = undefined | null | false | 0 | "";

/**
 * Polls `fn` until it returns (or resolves to) a truthy value, and resolves with that value.
 *
 * A falsy value or a thrown error (or rejection) means "not yet": `fn` is tried again every `interval`
 * ms until `timeout` ms have passed, then the promise rejects with a {@link WaitForTimeoutError} that
 * names `message` and the last error (or the last falsy value). An attempt still pending at the
 * deadline is abandoned. For assertion-style callbacks (`expect(...)` that throws), return `true` at
 * the end.
 *
 * @example
 * const msg = await waitFor(() => jsm.streams.getMessage(stream, { seq: 1 }), { message: "message 1" });
 */
export async function waitFor<T>(
  fn: () => T | Promise<T>,
  opts: WaitForOptions = {},
): Promise<Exclude<T, Falsy>> {
  const { timeout = 10_000, interval = 25, message = "condition", signal } = opts;
  if (!(timeout >= 0) || !(interval >= 0)) {
    throw new RangeError(`waitFor: timeout (${timeout}) and interval (${interval}) must be >= 0`);
  }
  const start = performance.now();
  const deadline = start + timeout;
  let attempts = 0;
  let lastError: unknown;
  let lastValue: unknown;
  let pendingAtDeadline = false;

  for (;;) {
    signal?.throwIfAborted();
    attempts += 1;
    try {
      const value = await attempt(fn, deadline - performance.now());
      if (value === attemptTimedOut) {
        pendingAtDeadline = true;
        break;
      }
      if (value) return value as Exclude<T, Falsy>;
      lastError = undefined;
      lastValue = value;
    } catch (err) {
      lastError = err;
    }
    const remaining = deadline - performance.now();
    if (remaining <= 0) break;
    await delay(Math.min(interval, remaining), undefined, signal ? { signal } : undefined).catch(
      (err: unknown) => {
        signal?.throwIfAborted();
        throw err;
      },
    );
  }

  const elapsed = Math.round(performance.now() - start);
  const last = pendingAtDeadline
    ? "the last attempt was still pending"
    : lastError !== undefined
      ? `last error: ${describeError(lastError)}`
      : `last value: ${describe(lastValue)}`;
  throw new WaitForTimeoutError(
    `waitFor timed out after ${elapsed}ms waiting for ${message} (${attempts} attempts; ${last})`,
    attempts,
    lastError,
  );
}
