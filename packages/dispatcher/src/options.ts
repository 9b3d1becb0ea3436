import type { NatsConnection } from "@nats-io/transport-node";
import type { CodingNames, CodingNamesOptions, TopologyOptions } from "@station-coding/protocol";
import {
  ErrorCodes,
  Name,
  ValidationError,
  codingNames,
  natsServers,
  parseDuration,
  parseWith,
  validateSigners,
} from "@station-coding/protocol";
import type { Logger } from "pino";
import { pino } from "pino";
import { z } from "zod";

const Duration = z.union([z.number().nonnegative(), z.string()]);

const RawOptions = z.object({
  /** NATS server URLs (a comma-separated string or a list). @default process.env.NATS_URL, then "nats://127.0.0.1:4222" */
  servers: z.union([z.string().min(1), z.array(z.string().min(1)).min(1)]).optional(),
  /** Path of a NATS credentials file (JWT + nkey seed). */
  creds: z.string().min(1).optional(),
  /** NATS user name (with `pass`). */
  user: z.string().optional(),
  /** NATS password. */
  pass: z.string().optional(),
  /** NATS token. */
  token: z.string().optional(),
  /** Tenant org: every subject, stream and bucket is the org's (`org.<org>.coding.*`). @default single-tenant */
  org: Name.optional(),
  /** Create or check the streams, buckets and object store at connect. @default true */
  ensureTopology: z.boolean().optional(),
  /** Longest wait for any single NATS request (JetStream API, publish acks, KV). @default "10s" */
  requestTimeout: Duration.optional(),
  /** Largest input file `artifacts.stage` accepts, in bytes. @default 64 MiB */
  maxArtifactBytes: z.number().int().positive().optional(),
  /** How long `events()` waits for missing events after the result arrived before it ends. @default "2s" */
  eventsSettle: Duration.optional(),
  /**
   * Public nkeys (`U…`) of the workers whose results this dispatcher accepts: a result without a
   * valid signature by one of them is ignored and logged, and waiting goes on. Empty: results are
   * accepted when the results stream stored them, signed or not. See docs/multi-tenancy.md.
   * @default []
   */
  trustedSigners: z.array(z.string()).optional(),
  /**
   * JetStream API prefix for reading another account's streams through imports (e.g.
   * `$JS.acme.API` for the operator account's `status --all-orgs`). @default "$JS.API"
   */
  jetstreamApiPrefix: z.string().min(1).optional(),
  /** Connection name shown by the server, and `requestedBy` of cancel requests. @default "station-coding-dispatcher" */
  name: z.string().min(1).optional(),
});

/** Options of {@link CodingDispatcher.connect}; durations as ms or strings such as `"30s"`. */
export type DispatcherOptions = z.input<typeof RawOptions> & {
  /** Name overrides (subjects, streams, buckets); the org comes from `org`. */
  names?: Omit<CodingNamesOptions, "org">;
  /** Topology options used when the dispatcher creates the topology. */
  topology?: TopologyOptions;
  /** Use this connection instead of connecting; the dispatcher never closes it. */
  connection?: NatsConnection;
  /** Structured logger; every line about a task carries its taskID. @default a silent pino logger */
  logger?: Logger;
};

/** Dispatcher options with every default applied and durations in ms. */
export interface ResolvedDispatcherOptions {
  servers: string[];
  creds?: string;
  user?: string;
  pass?: string;
  token?: string;
  org: string | undefined;
  names: CodingNames;
  ensureTopology: boolean;
  topology: TopologyOptions;
  requestTimeout: number;
  trustedSigners: string[];
  jetstreamApiPrefix: string | undefined;
  maxArtifactBytes: number;
  eventsSettle: number;
  name: string;
  connection: NatsConnection | undefined;
  logger: Logger;
}

/**
 * Compiles raw dispatcher options: zod parse, defaults, durations in ms, names of the namespace.
 *
 * @throws ValidationError (code INVALID_CONFIG) naming the option.
 */
export function resolveDispatcherOptions(options: DispatcherOptions = {}): ResolvedDispatcherOptions {
  const { names, topology, connection, logger, ...raw } = options;
  const o = parseWith(RawOptions, raw, "options", ErrorCodes.InvalidConfig);
  const servers = natsServers(o.servers);
  if (servers.length === 0) {
    throw new ValidationError(
      "servers",
      "nonempty",
      `servers ${JSON.stringify(o.servers)}: must name at least one NATS server URL`,
      ErrorCodes.InvalidConfig,
    );
  }
  const resolvedNames = codingNames({ ...names, ...(o.org !== undefined ? { org: o.org } : {}) });
  const name = o.name ?? "station-coding-dispatcher";
  return {
    servers,
    ...(o.creds !== undefined ? { creds: o.creds } : {}),
    ...(o.user !== undefined ? { user: o.user } : {}),
    ...(o.pass !== undefined ? { pass: o.pass } : {}),
    ...(o.token !== undefined ? { token: o.token } : {}),
    org: o.org,
    names: resolvedNames,
    ensureTopology: o.ensureTopology ?? true,
    topology: topology ?? {},
    requestTimeout: parseDuration("requestTimeout", o.requestTimeout ?? "10s"),
    trustedSigners: validateSigners("trustedSigners", o.trustedSigners ?? []),
    jetstreamApiPrefix: o.jetstreamApiPrefix,
    maxArtifactBytes: o.maxArtifactBytes ?? 64 * 1024 * 1024,
    eventsSettle: parseDuration("eventsSettle", o.eventsSettle ?? "2s"),
    name,
    connection,
    logger: (logger ?? pino({ level: "silent" })).child({
      component: "dispatcher",
      ...(o.org !== undefined ? { org: o.org } : {}),
    }),
  };
}
