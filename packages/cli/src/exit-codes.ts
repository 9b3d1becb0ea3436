/** Process exit codes of the CLI. */
export const ExitCode = {
  /** Task completed, or command succeeded. */
  Ok: 0,
  /** Task ended in error, or the command failed. */
  Error: 1,
  /** Bad usage: unknown flag, bad value, missing argument or file. */
  Usage: 2,
  /** Task timed out. */
  Timeout: 3,
  /** Task was cancelled. */
  Cancelled: 4,
} as const;
