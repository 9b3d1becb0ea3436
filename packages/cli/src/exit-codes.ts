/**
 * Process exit codes of the CLI.
 *
 * Commands that follow a task (`submit`, `watch`, `result`) exit with the code of the task's
 * final status; the others exit 0 on success, 1 on failure and 2 on bad usage.
 */
export const ExitCode = {
  /** Task completed, or command succeeded. */
  Ok: 0,
  /** Task ended in error, or the command failed (e.g. the NATS server cannot be reached). */
  Error: 1,
  /** Bad usage: unknown flag, bad value, missing argument or file, invalid configuration. */
  Usage: 2,
  /** Task timed out (it ran past its time limit, `submit --timeout`). */
  Timeout: 3,
  /** Task was cancelled. */
  Cancelled: 4,
  /**
   * No result yet: the task is still queued or running and goes on. `result` without `--wait`
   * on an unfinished task, or `--wait-timeout` ran out (a client-side limit, unlike 3).
   */
  Pending: 5,
  /** Ctrl-C (SIGINT) detached from the task, which goes on (128 + SIGINT, as shells report it). */
  Interrupted: 130,
  /** SIGTERM detached from the task, which goes on (128 + SIGTERM). */
  Terminated: 143,
} as const;

/** One of {@link ExitCode}. */
export type ExitCode = (typeof ExitCode)[keyof typeof ExitCode];
