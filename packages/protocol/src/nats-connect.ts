import type { NodeConnectionOptions } from "@nats-io/transport-node";
import { credentialsAuthenticator } from "./nats-credentials.js";

/** The NATS server a client uses when nothing names one (nor NATS_URL). */
export const DEFAULT_NATS_URL = "nats://127.0.0.1:4222";

/**
 * The NATS servers to use: the given ones (a list, or a comma-separated string), else the
 * environment's NATS_URL, else {@link DEFAULT_NATS_URL}. Blank entries are dropped.
 */
export function natsServers(given?: string | readonly string[]): string[] {
  const value = given ?? (process.env.NATS_URL || DEFAULT_NATS_URL);
  return (typeof value === "string" ? value.split(",") : value).map((s) => s.trim()).filter(Boolean);
}

/** How a station-coding client connects to NATS, and as whom. */
export interface NatsConnectSettings {
  /** The servers (see {@link natsServers}). */
  servers?: string | readonly string[];
  /** The connection's name, as the server shows it. */
  name: string;
  /** Reply subject prefix (per org, so that NATS users can be limited to their own replies). */
  inboxPrefix?: string;
  /** How long the first connect may take, in ms. @default the client's (20 s) */
  timeout?: number;
  /** Reconnect attempts after the connection is lost; -1 keeps trying. @default -1 */
  maxReconnectAttempts?: number;
  /** The contents of a credentials file: a JWT `.creds` file or a user nkey seed. */
  creds?: Uint8Array | undefined;
  /** Names the credentials in the error when they are neither. @default "creds" */
  credsLabel?: string;
  user?: string | undefined;
  pass?: string | undefined;
  token?: string | undefined;
}

/**
 * The connect options of every station-coding client (worker, dispatcher, CLI, demo, org admin):
 * servers, name, inbox prefix, reconnects every 500 ms, and the credentials, user and password,
 * or token given.
 *
 * @throws ValidationError (INVALID_CONFIG) when `creds` are neither a credentials file nor a seed.
 */
export function natsConnectOptions(s: NatsConnectSettings): NodeConnectionOptions {
  return {
    servers: natsServers(s.servers),
    name: s.name,
    ...(s.inboxPrefix !== undefined ? { inboxPrefix: s.inboxPrefix } : {}),
    ...(s.timeout !== undefined ? { timeout: s.timeout } : {}),
    maxReconnectAttempts: s.maxReconnectAttempts ?? -1,
    reconnectTimeWait: 500,
    ...(s.creds ? { authenticator: credentialsAuthenticator(s.creds, s.credsLabel) } : {}),
    ...(s.user !== undefined ? { user: s.user, pass: s.pass ?? "" } : {}),
    ...(s.token !== undefined ? { token: s.token } : {}),
  };
}
