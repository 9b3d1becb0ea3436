import { pino } from "pino";
import type { DestinationStream, Logger } from "pino";
import type { SecretRedactor } from "./shared/redact.js";

/** Field paths that never reach a log line in clear. */
export const REDACTED_PATHS = [
  "token",
  "*.token",
  "*.*.token",
  "task.workspace.git.token",
  "pass",
  "password",
  "*.password",
  "apiKey",
  "*.apiKey",
  "authorization",
  "*.authorization",
  "headers.authorization",
];

/**
 * A pino logger with path redaction and a hook that scrubs registered secrets from every message
 * and string field, so an error text that quotes a token never logs it.
 */
export function createLogger(
  redactor: SecretRedactor,
  options: { level?: string; name?: string; destination?: DestinationStream } = {},
): Logger {
  const config = {
    name: options.name ?? "station-coding-worker",
    level: options.level ?? process.env.LOG_LEVEL ?? "info",
    redact: { paths: REDACTED_PATHS, censor: "[REDACTED]" },
    hooks: {
      logMethod(this: Logger, args: unknown[], method: (...a: unknown[]) => void) {
        method.apply(
          this,
          args.map((arg) => redactor.redactValue(arg instanceof Error ? errorFields(arg) : arg)),
        );
      },
    },
  };
  return options.destination ? pino(config, options.destination) : pino(config);
}

function errorFields(err: Error): Record<string, unknown> {
  return {
    type: err.name,
    message: err.message,
    stack: err.stack,
    ...(err as unknown as Record<string, unknown>),
  };
}
