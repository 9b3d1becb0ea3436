import { hostname } from "node:os";
import { randomBytes } from "node:crypto";
import { z } from "zod";
import type { NatsConnection } from "@nats-io/transport-node";
import type { CodingNamesOptions, TopologyOptions } from "@station-coding/protocol";
import {
  CleanupPolicy,
  DEFAULT_ACK_WAIT_MS,
  ErrorCodes,
  MAX_TIMEOUT_MS,
  Name,
  ValidationError,
  natsServers,
  parseDuration,
  parseWith,
  validateName,
  withoutUndefined,
} from "@station-coding/protocol";
import { parseListen } from "@station-coding/telemetry";
import type { DestinationStream } from "pino";
import { GIT_TIMEOUTS } from "./git/git.js";
import type { AgentDriver } from "./shared/driver.js";
import { DEFAULT_MAX_INPUT_BYTES } from "./workspace/input-files.js";
import { defaultWorkspaceDir } from "./workspace/workspace.js";
import type { WorkspaceGitOptions } from "./workspace/workspace.js";

const Duration = z.union([z.number(), z.string()]);

const RawOptions = z.object({
  /** NATS servers (a list or a comma-separated string). @default process.env.NATS_URL, then "nats://127.0.0.1:4222" */
  servers: z.union([z.string(), z.array(z.string())]).optional(),
  /** NATS credentials file. */
  creds: z.string().optional(),
  user: z.string().optional(),
  pass: z.string().optional(),
  token: z.string().optional(),
  /** Orgs served; omit for single-tenant mode. */
  orgs: z.array(Name).optional(),
  /**
   * A credentials file per org (JWT `.creds` or nkey seed, e.g. from `station-coding org add`):
   * each org listed is served over its own connection with its own credentials, as one NATS
   * account per org requires. Orgs not listed share the connection made with `creds`/`user`/`token`.
   */
  orgCreds: z.record(Name, z.string().min(1)).optional(),
  /**
   * File holding a user nkey seed that signs results when the connection's own credentials have no
   * seed (user/password or token). Dispatchers trust its public key with `trustedSigners`.
   * @default the seed of the connection's credentials file, if any
   */
  resultSigningKey: z.string().min(1).optional(),
  /** Tasks run at once by this worker. @default 4 */
  concurrency: z.number().int().positive().max(1024).optional(),
  /** Tasks of one org run at once by this worker (shared workers). @default concurrency */
  perOrgConcurrency: z.number().int().positive().optional(),
  /**
   * Lease length (consumer ack_wait); kept alive every third of it while the task runs, so a dead
   * worker's task is redelivered after about this long. @default "5s"
   */
  ackWait: Duration.optional(),
  /** In-flight cap across all workers (consumer max_ack_pending). @default 1000 */
  maxAckPending: z.number().int().positive().optional(),
  /**
   * Server-side delivery cap of the task consumer; when reached, the max-deliveries advisory makes
   * a worker dead-letter the task. -1 leaves retries to attempt counting alone. @default -1
   */
  maxDeliver: z.number().int().min(-1).optional(),
  /** Runs of a task before it is dead-lettered (a crash counts as a run). @default 3 */
  maxAttempts: z.number().int().positive().optional(),
  /** First retry delay, doubled per attempt. @default "1s" */
  retryDelay: Duration.optional(),
  /** Longest retry delay. @default "60s" */
  maxRetryDelay: Duration.optional(),
  /** Time limit of a task that sets none, at most 2^31-1 ms (about 24.8 days). @default "30m" */
  taskTimeout: Duration.optional(),
  /** How long in-flight tasks may finish after SIGTERM before they are handed back. @default "30s" */
  shutdownGrace: Duration.optional(),
  /** How long an aborted driver may take to return before the runtime moves on. @default "10s" */
  abortGrace: Duration.optional(),
  /** Presence heartbeat interval. @default "5s" */
  heartbeatInterval: Duration.optional(),
  /** Delay before retrying a task whose session is busy. @default "1s" */
  sessionBusyDelay: Duration.optional(),
  /** Pull request expiry: how long one `next()` waits for a task. @default "5s" */
  pullExpires: Duration.optional(),
  /** Root of the workspaces. @default $TMPDIR/station-coding/workspaces */
  workspaceDir: z.string().optional(),
  /** Worker id in presence records and leases. @default "<hostname>-<pid>-<random>" */
  workerID: Name.optional(),
  /** Window in which text deltas are merged into one event. @default 100 */
  coalesceMs: z.number().int().nonnegative().max(1000).optional(),
  /** Create or check the topology at start. @default true */
  ensureTopology: z.boolean().optional(),
  /**
   * `HOST:PORT` of an HTTP listener serving `/metrics` (Prometheus text format) and `/healthz`
   * (200 while connected to NATS, else 503). @default none: no listener
   */
  metricsListen: z.string().optional(),
  /** When workspaces are deleted. @default "on_session_end" */
  cleanupPolicy: CleanupPolicy.optional(),
  /** Delete workspaces unused for longer than this (0 = never sweep). @default "7d" */
  workspaceMaxAge: Duration.optional(),
  /** Largest total size of a task's staged inputs, in bytes. @default 64 MiB */
  maxInputBytes: z.number().int().positive().optional(),
  /** Git: credentials, URL policy, author and time limits. */
  git: z
    .object({
      /** Env var holding the git token for single-tenant tasks. */
      tokenEnv: z.string().optional(),
      /** Env var holding each org's git token. */
      tokenEnvByOrg: z.record(Name, z.string()).optional(),
      /** Username sent with the token. @default "x-access-token" */
      username: z.string().optional(),
      /** Commit author name. */
      userName: z.string().optional(),
      /** Commit author email. */
      userEmail: z.string().optional(),
      /** Allow file:// and local paths as repositories. @default false */
      allowLocalRepos: z.boolean().optional(),
      /** Allow plain http:// repositories. @default false */
      allowHttp: z.boolean().optional(),
      /** Hosts repositories may come from (all when unset). */
      allowedHosts: z.array(z.string()).optional(),
      /** Per-org host allow-lists. */
      allowedHostsByOrg: z.record(Name, z.array(z.string())).optional(),
      /** Time limit of a git call. @default "60s" */
      timeout: Duration.optional(),
      /** Time limit of a clone. @default "10m" */
      cloneTimeout: Duration.optional(),
      /** Time limit of a push. @default "5m" */
      pushTimeout: Duration.optional(),
      /** SSH private key file for ssh:// repositories. */
      sshKeyFile: z.string().optional(),
    })
    .strict()
    .optional(),
});

/** Options of a {@link CodingWorker}; durations as ms or strings such as `"30s"`. */
export type WorkerOptions = z.input<typeof RawOptions> & {
  /** The agent to drive. */
  driver: AgentDriver;
  /** Use this connection instead of connecting (the worker then does not close it). */
  connection?: NatsConnection;
  /** Name overrides (subjects, buckets, streams), applied to every org. */
  names?: Omit<CodingNamesOptions, "org">;
  /** Topology options used when the worker creates the topology. */
  topology?: TopologyOptions;
  /** Log level. @default process.env.LOG_LEVEL ?? "info" */
  logLevel?: string;
  /** Where log lines go (pino destination); secrets are scrubbed before. @default stdout */
  logDestination?: DestinationStream;
  /** Secrets to scrub from every event, result, log line and error (tokens, API keys). */
  secrets?: string[];
};

/** Worker options with every default applied and durations in ms. */
export interface ResolvedWorkerOptions {
  servers: string[];
  creds?: string;
  user?: string;
  pass?: string;
  token?: string;
  orgs: (string | undefined)[];
  /** Credentials file per org served over its own connection. */
  orgCreds: Record<string, string>;
  resultSigningKey?: string;
  /** Reply subject prefix: `_INBOX` single-tenant, else {@link workerInboxPrefix} of the orgs. */
  inboxPrefix: string;
  concurrency: number;
  perOrgConcurrency: number;
  ackWait: number;
  maxAckPending: number;
  maxDeliver: number;
  maxAttempts: number;
  retryDelay: number;
  maxRetryDelay: number;
  taskTimeout: number;
  shutdownGrace: number;
  abortGrace: number;
  heartbeatInterval: number;
  sessionBusyDelay: number;
  pullExpires: number;
  workspaceDir: string;
  workerID: string;
  coalesceMs: number;
  ensureTopology: boolean;
  /** `HOST:PORT` of the `/metrics` and `/healthz` listener; undefined: none. */
  metricsListen?: string;
  cleanupPolicy: CleanupPolicy;
  workspaceMaxAge: number;
  maxInputBytes: number;
  git: WorkspaceGitOptions;
}

/** Compiles raw options into resolved ones, with errors naming the option. */
export function resolveWorkerOptions(options: WorkerOptions): ResolvedWorkerOptions {
  const {
    driver: _driver,
    connection: _c,
    names: _n,
    topology: _t,
    logLevel: _l,
    logDestination: _d,
    secrets: _s,
    ...raw
  } = options;
  const o = parseWith(RawOptions, raw, "options", ErrorCodes.InvalidConfig);
  const concurrency = o.concurrency ?? 4;
  // Every duration below drives a Node.js timer, which fires at once when given more than 2^31-1 ms.
  const ms = (
    field: string,
    value: string | number | undefined,
    fallback: string | number,
    max = MAX_TIMEOUT_MS,
  ): number => {
    const parsed = parseDuration(field, value ?? fallback);
    if (parsed > max) {
      throw new ValidationError(
        field,
        "max",
        `${field} ${parsed}ms: must be at most ${max}ms (about 24.8 days, the longest Node.js timer)`,
        ErrorCodes.InvalidConfig,
      );
    }
    return parsed;
  };
  const ackWait = ms("ackWait", o.ackWait, DEFAULT_ACK_WAIT_MS);
  if (ackWait < 1_000) {
    throw new ValidationError(
      "ackWait",
      "min",
      `ackWait ${ackWait}ms: must be at least 1s`,
      ErrorCodes.InvalidConfig,
    );
  }
  const orgs = o.orgs && o.orgs.length > 0 ? o.orgs : [undefined];
  for (const org of Object.keys(o.orgCreds ?? {})) {
    if (!o.orgs?.includes(org)) {
      throw new ValidationError(
        `orgCreds.${org}`,
        "served",
        `orgCreds.${org}: ${org} is not one of the orgs this worker serves (orgs: ${orgs.filter(Boolean).join(", ") || "none"})`,
        ErrorCodes.InvalidConfig,
      );
    }
  }
  return {
    servers: natsServers(o.servers),
    ...(o.creds !== undefined ? { creds: o.creds } : {}),
    ...(o.user !== undefined ? { user: o.user } : {}),
    ...(o.pass !== undefined ? { pass: o.pass } : {}),
    ...(o.token !== undefined ? { token: o.token } : {}),
    orgs,
    orgCreds: o.orgCreds ?? {},
    ...(o.resultSigningKey !== undefined ? { resultSigningKey: o.resultSigningKey } : {}),
    inboxPrefix: workerInboxPrefix(
      orgs.filter((org) => org === undefined || o.orgCreds?.[org] === undefined),
    ),
    concurrency,
    perOrgConcurrency: Math.min(o.perOrgConcurrency ?? concurrency, concurrency),
    ackWait,
    maxAckPending: o.maxAckPending ?? 1000,
    maxDeliver: o.maxDeliver ?? -1,
    maxAttempts: o.maxAttempts ?? 3,
    retryDelay: ms("retryDelay", o.retryDelay, "1s"),
    maxRetryDelay: ms("maxRetryDelay", o.maxRetryDelay, "60s"),
    taskTimeout: ms("taskTimeout", o.taskTimeout, "30m"),
    shutdownGrace: ms("shutdownGrace", o.shutdownGrace, "30s"),
    abortGrace: ms("abortGrace", o.abortGrace, "10s"),
    heartbeatInterval: ms("heartbeatInterval", o.heartbeatInterval, "5s"),
    sessionBusyDelay: ms("sessionBusyDelay", o.sessionBusyDelay, "1s"),
    pullExpires: ms("pullExpires", o.pullExpires, "5s"),
    workspaceDir: o.workspaceDir ?? defaultWorkspaceDir(),
    workerID: o.workerID ?? validateName("workerID", defaultWorkerID()),
    coalesceMs: o.coalesceMs ?? 100,
    ensureTopology: o.ensureTopology ?? true,
    ...(o.metricsListen !== undefined ? { metricsListen: checkListen(o.metricsListen) } : {}),
    cleanupPolicy: o.cleanupPolicy ?? "on_session_end",
    // An age, compared with timestamps; its sweep timer runs at most hourly.
    workspaceMaxAge: ms("workspaceMaxAge", o.workspaceMaxAge, "7d", Number.MAX_SAFE_INTEGER),
    maxInputBytes: o.maxInputBytes ?? DEFAULT_MAX_INPUT_BYTES,
    git: {
      ...withoutUndefined(o.git ?? {}),
      timeout: ms("git.timeout", o.git?.timeout, GIT_TIMEOUTS.call),
      cloneTimeout: ms("git.cloneTimeout", o.git?.cloneTimeout, GIT_TIMEOUTS.clone),
      pushTimeout: ms("git.pushTimeout", o.git?.pushTimeout, GIT_TIMEOUTS.push),
    },
  };
}

/**
 * Reply subject prefix of a worker serving `orgs`: `_INBOX_worker+<org>[+<org>…]` (sorted), so that a
 * NATS user can be limited to the replies of workers serving the same orgs: no dispatcher (which
 * uses `_INBOX_<org>`) and no worker of another set of orgs can subscribe to them. `+` cannot occur
 * in an org name, so no two sets of orgs share a prefix. Single-tenant workers keep `_INBOX`.
 */
export function workerInboxPrefix(orgs: readonly (string | undefined)[]): string {
  const named = [...new Set(orgs.filter((org): org is string => org !== undefined))].sort();
  return named.length === 0 ? "_INBOX" : `_INBOX_worker+${named.join("+")}`;
}

function checkListen(listen: string): string {
  try {
    parseListen(listen);
    return listen;
  } catch {
    throw new ValidationError(
      "metricsListen",
      "format",
      `metricsListen ${JSON.stringify(listen)}: must be HOST:PORT, e.g. 127.0.0.1:9464`,
      ErrorCodes.InvalidConfig,
    );
  }
}

function defaultWorkerID(): string {
  const host =
    hostname()
      .replace(/[^A-Za-z0-9_-]/g, "-")
      .slice(0, 40) || "worker";
  return `${host}-${process.pid}-${randomBytes(3).toString("hex")}`;
}
