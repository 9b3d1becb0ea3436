import { readFile } from "node:fs/promises";
import { AuthorizationError, connect, errors } from "@nats-io/transport-node";
import type { NatsConnection, NodeConnectionOptions } from "@nats-io/transport-node";
import { CodingDispatcher } from "@station-coding/dispatcher";
import {
  ErrorCodes,
  StationError,
  ValidationError,
  codingNames,
  natsConnectOptions,
} from "@station-coding/protocol";
import type { Logger } from "pino";
import { pino } from "pino";
import { namesFromConfig } from "./config.js";
import type { CommonFlags, Connection } from "./context.js";
import { UsageError, connectionFrom } from "./context.js";

/** Longest wait for the NATS server to answer the first connect. */
export const CONNECT_TIMEOUT_MS = 5_000;

/**
 * How a command uses its connection: `one-shot` commands give up after a few reconnect attempts
 * (a request fails rather than waiting forever); `follow` commands (`submit`, `watch`,
 * `result --wait`) keep reconnecting, since the dispatcher's event and result waits survive it.
 */
export type ConnectionMode = "one-shot" | "follow";

/** A dispatcher on a connection the CLI opened; `close` closes both. */
export interface CliDispatcher {
  dispatcher: CodingDispatcher;
  connection: Connection;
  close(): Promise<void>;
}

/** The dispatcher's logger: silent unless LOG_LEVEL asks for lines (pino JSON on stderr). */
function cliLogger(): Logger {
  const level = process.env.LOG_LEVEL ?? "silent";
  return pino({ level, name: "station-coding" }, pino.destination({ dest: 2, sync: true }));
}

/** The error of a NATS server that refused the command's credentials. */
export function credentialsRefused(servers: string, cause: unknown): StationError {
  return new StationError(
    ErrorCodes.PermissionDenied,
    `NATS at ${servers} refused the credentials (check --creds, --user/--password or --token)`,
    { cause },
  );
}

/**
 * Connects to NATS for one command: a connect timeout, reconnects as the mode needs, and a one-line
 * error naming the server when it cannot be reached or refuses the credentials.
 */
export async function connectNats(
  conn: Connection,
  inboxPrefix: string,
  mode: ConnectionMode,
): Promise<NatsConnection> {
  const path = conn.creds;
  const creds =
    path === undefined
      ? undefined
      : await readFile(path).catch(() => {
          throw new UsageError(`--creds ${path}: cannot be read`);
        });
  let options: NodeConnectionOptions;
  try {
    options = natsConnectOptions({
      servers: conn.servers,
      name: "station-coding-cli",
      inboxPrefix,
      timeout: CONNECT_TIMEOUT_MS,
      maxReconnectAttempts: mode === "follow" ? -1 : 3,
      creds,
      credsLabel: `--creds ${path}`,
      user: conn.user,
      pass: conn.pass,
      token: conn.token,
    });
  } catch (err) {
    throw new UsageError(err instanceof ValidationError ? err.message : String(err));
  }
  const where = `NATS at ${conn.servers}`;
  const hint = "start nats-server -js, or pass --nats-url / set NATS_URL";
  try {
    return await connect(options);
  } catch (err) {
    if (err instanceof AuthorizationError) throw credentialsRefused(conn.servers, err);
    if (err instanceof errors.TimeoutError) {
      throw new StationError(
        ErrorCodes.Internal,
        `cannot connect to ${where}: no answer within ${CONNECT_TIMEOUT_MS / 1000}s (${hint})`,
        { cause: err, retryable: true },
      );
    }
    const message = err instanceof Error ? err.message : String(err);
    throw new StationError(ErrorCodes.Internal, `cannot connect to ${where}: ${message} (${hint})`, {
      cause: err,
      retryable: true,
    });
  }
}

/**
 * The worker keys whose signed results the CLI accepts: station.yaml `coding.results.signers`,
 * else env STATION_RESULT_SIGNERS (comma-separated); none means unsigned stored results count.
 */
export function resultSigners(connection: Connection): string[] {
  const fromConfig = connection.config?.coding.results?.signers;
  if (fromConfig) return fromConfig;
  const fromEnv = process.env.STATION_RESULT_SIGNERS;
  return fromEnv
    ? fromEnv
        .split(",")
        .map((s) => s.trim())
        .filter(Boolean)
    : [];
}

/**
 * Connects a dispatcher for one command from the common flags (flag, then station.yaml, then
 * environment), creating or checking the namespace's topology.
 */
export async function openDispatcher(flags: CommonFlags, mode: ConnectionMode): Promise<CliDispatcher> {
  const connection = await connectionFrom(flags);
  const org = connection.org;
  if (org?.includes(",")) {
    throw new UsageError(`--org ${JSON.stringify(org)}: name one org (a list is for the worker command)`);
  }
  const nameOverrides = namesFromConfig(connection.config);
  // Validates the org before anything goes on the wire.
  const names = codingNames({ ...nameOverrides, ...(org !== undefined ? { org } : {}) });
  const nc = await connectNats(connection, names.inboxPrefix, mode);
  let dispatcher: CodingDispatcher;
  try {
    dispatcher = await CodingDispatcher.connect({
      connection: nc,
      names: nameOverrides,
      ...(org !== undefined ? { org } : {}),
      name: "station-coding-cli",
      logger: cliLogger(),
      trustedSigners: resultSigners(connection),
    });
  } catch (err) {
    await nc.close().catch(() => undefined);
    throw err;
  }
  return {
    dispatcher,
    connection,
    async close() {
      await dispatcher.close();
      await nc.close().catch(() => undefined);
    },
  };
}

/** Runs `fn` with a dispatcher and closes it afterwards, whatever happens. */
export async function withDispatcher<T>(
  flags: CommonFlags,
  mode: ConnectionMode,
  fn: (cli: CliDispatcher) => Promise<T>,
): Promise<T> {
  const cli = await openDispatcher(flags, mode);
  try {
    return await fn(cli);
  } finally {
    await cli.close();
  }
}
