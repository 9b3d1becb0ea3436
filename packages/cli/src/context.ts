import {
  ErrorCodes,
  StationError,
  ValidationError,
  natsServers,
  parseDuration,
} from "@station-coding/protocol";
import type { StationConfig } from "./config.js";
import { loadConfig } from "./config.js";
import { ExitCode } from "./exit-codes.js";

/** Flags every command accepts. */
export interface CommonFlags {
  natsUrl?: string;
  creds?: string;
  user?: string;
  password?: string;
  token?: string;
  config?: string;
  org?: string;
  json?: boolean;
}

/** Runs a command's body: maps its return value (or failure) to an exit code and one line. */
export type Run = (fn: () => Promise<number | void>) => Promise<void>;

/** The command that re-attaches to a task, with the namespace flags that were given. */
export function reattachCommand(flags: CommonFlags, taskID: string): string {
  const extra = [
    flags.natsUrl !== undefined ? ` --nats-url ${flags.natsUrl}` : "",
    flags.config !== undefined ? ` --config ${flags.config}` : "",
    flags.org !== undefined ? ` --org ${flags.org}` : "",
  ].join("");
  return `station-coding watch ${taskID}${extra}`;
}

/** Resolved connection settings: flag, then config, then environment, then default. */
export interface Connection {
  servers: string;
  creds?: string;
  user?: string;
  pass?: string;
  token?: string;
  org?: string;
  config?: StationConfig;
}

/** Builds the connection settings from the common flags. */
export async function connectionFrom(flags: CommonFlags): Promise<Connection> {
  const config = flags.config ? await loadConfig(flags.config) : undefined;
  const nats = config?.coding.nats;
  const org = flags.org ?? config?.coding.org;
  const creds = flags.creds ?? nats?.creds_file;
  return {
    servers: natsServers(flags.natsUrl ?? nats?.url).join(","),
    ...(creds ? { creds } : {}),
    ...(flags.user ? { user: flags.user } : {}),
    ...((flags.password ?? process.env.NATS_PASSWORD)
      ? { pass: flags.password ?? process.env.NATS_PASSWORD }
      : {}),
    ...((flags.token ?? process.env.NATS_TOKEN) ? { token: flags.token ?? process.env.NATS_TOKEN } : {}),
    ...(org ? { org } : {}),
    ...(config ? { config } : {}),
  };
}

/** A usage error: printed as one line, exit code 2. */
export class UsageError extends Error {
  override name = "UsageError";
}

/** Parses a duration flag with an error naming the flag. */
export function durationFlag(flag: string, value: string | undefined): number | undefined {
  if (value === undefined) return undefined;
  try {
    return parseDuration(flag, value);
  } catch (err) {
    throw new UsageError((err as Error).message);
  }
}

/** Parses a positive integer flag. */
export function intFlag(flag: string, value: string | undefined): number | undefined {
  if (value === undefined) return undefined;
  const n = Number(value);
  if (!Number.isInteger(n) || n <= 0)
    throw new UsageError(`${flag} ${JSON.stringify(value)}: must be a positive integer`);
  return n;
}

/** One line for an error, and the exit code it deserves. Never a stack trace. */
export function describeFailure(err: unknown, servers?: string): { line: string; code: number } {
  if (err instanceof UsageError) return { line: `error: ${err.message}`, code: ExitCode.Usage };
  if (err instanceof ValidationError) return { line: `error: ${err.message}`, code: ExitCode.Usage };
  if (err instanceof StationError) {
    const code = err.code === ErrorCodes.InvalidConfig ? ExitCode.Usage : ExitCode.Error;
    return { line: `error: ${err.message}`, code };
  }
  const message = err instanceof Error ? err.message : String(err);
  const name = err instanceof Error ? err.name : "";
  if (/ECONNREFUSED|CONNECTION_REFUSED|connection refused|ConnectionError/i.test(`${name} ${message}`)) {
    return {
      line: `error: cannot connect to NATS at ${servers ?? "the server"}: ${message} (start nats-server with -js, or pass --nats-url / set NATS_URL)`,
      code: ExitCode.Error,
    };
  }
  if (/authorization|authentication/i.test(message)) {
    return { line: `error: NATS refused the credentials: ${message}`, code: ExitCode.Error };
  }
  return { line: `error: ${message}`, code: ExitCode.Error };
}
