import {
  AckPolicy,
  DeliverPolicy,
  DiscardPolicy,
  JetStreamApiError,
  RetentionPolicy,
  StorageType,
  jetstreamManager,
} from "@nats-io/jetstream";
import type { ConsumerConfig, JetStreamManager, StreamConfig, StreamInfo } from "@nats-io/jetstream";
import { Kvm } from "@nats-io/kv";
import { Objm } from "@nats-io/obj";
import type { NatsConnection } from "@nats-io/transport-node";
import { nanos } from "@nats-io/transport-node";
import { parseDuration } from "./duration.js";
import { ErrorCodes, PermissionDeniedError, StationError, TopologyConflictError } from "./errors.js";
import type { CodingNames } from "./subjects.js";

/** Options of {@link ensureTopology}; durations as ms or strings like `"24h"`. */
export interface TopologyOptions {
  /** Replicas of every stream, bucket and store (3 for a 3-node cluster). @default 1 */
  replicas?: number;
  /** Storage of every stream and bucket. @default "file" */
  storage?: "file" | "memory";
  /** Window in which a repeated `Nats-Msg-Id` is dropped. @default "2m" */
  duplicateWindow?: string | number;
  /** How long task events are kept for replay. @default "24h" */
  eventsMaxAge?: string | number;
  /** How long results are kept for lookup by taskID. @default "7d" */
  resultsMaxAge?: string | number;
  /** How long cancel requests are kept. @default "24h" */
  cancelsMaxAge?: string | number;
  /** How long dead letters are kept. @default "30d" */
  dlqMaxAge?: string | number;
  /** Largest task message accepted by the task stream, in bytes. @default 1 MiB */
  maxTaskBytes?: number;
}

/** Resolved {@link TopologyOptions}: durations in ms. */
export interface ResolvedTopologyOptions {
  replicas: number;
  storage: "file" | "memory";
  duplicateWindow: number;
  eventsMaxAge: number;
  resultsMaxAge: number;
  cancelsMaxAge: number;
  dlqMaxAge: number;
  maxTaskBytes: number;
}

/** Compiles raw topology options with their defaults. */
export function resolveTopologyOptions(options: TopologyOptions = {}): ResolvedTopologyOptions {
  return {
    replicas: options.replicas ?? 1,
    storage: options.storage ?? "file",
    duplicateWindow: parseDuration("duplicateWindow", options.duplicateWindow ?? "2m"),
    eventsMaxAge: parseDuration("eventsMaxAge", options.eventsMaxAge ?? "24h"),
    resultsMaxAge: parseDuration("resultsMaxAge", options.resultsMaxAge ?? "7d"),
    cancelsMaxAge: parseDuration("cancelsMaxAge", options.cancelsMaxAge ?? "24h"),
    dlqMaxAge: parseDuration("dlqMaxAge", options.dlqMaxAge ?? "30d"),
    maxTaskBytes: options.maxTaskBytes ?? 1024 * 1024,
  };
}

/** What {@link ensureTopology} found and did. */
export interface TopologyReport {
  /** Streams, buckets and stores that this call created. */
  created: string[];
  /** Those that already existed with a compatible configuration. */
  existing: string[];
}

/** Stream configurations station-coding needs for one namespace. */
export function streamConfigs(
  names: CodingNames,
  opts: ResolvedTopologyOptions,
): (Partial<StreamConfig> & { name: string })[] {
  const storage = opts.storage === "memory" ? StorageType.Memory : StorageType.File;
  const common = {
    storage,
    num_replicas: opts.replicas,
    duplicate_window: nanos(opts.duplicateWindow),
    discard: DiscardPolicy.Old,
  };
  return [
    {
      ...common,
      name: names.streams.tasks,
      description: "station-coding tasks (work queue)",
      subjects: [names.taskSubject],
      retention: RetentionPolicy.Workqueue,
      max_msg_size: opts.maxTaskBytes,
    },
    {
      ...common,
      name: names.streams.events,
      description: "station-coding live task events, kept for replay",
      subjects: [`${names.streamPrefix}.*`],
      retention: RetentionPolicy.Limits,
      max_age: nanos(opts.eventsMaxAge),
    },
    {
      ...common,
      name: names.streams.results,
      description: "station-coding task results, one per task",
      subjects: [`${names.resultPrefix}.*`],
      retention: RetentionPolicy.Limits,
      max_msgs_per_subject: 1,
      max_age: nanos(opts.resultsMaxAge),
      duplicate_window: nanos(Math.min(opts.resultsMaxAge, 3_600_000)),
      allow_direct: true,
    },
    {
      ...common,
      name: names.streams.cancels,
      description: "station-coding cancel requests, one per task",
      subjects: [`${names.cancelPrefix}.*`],
      retention: RetentionPolicy.Limits,
      max_msgs_per_subject: 1,
      max_age: nanos(opts.cancelsMaxAge),
      allow_direct: true,
    },
    {
      ...common,
      name: names.streams.dlq,
      description: "station-coding dead letters, one per task",
      subjects: [`${names.dlqPrefix}.*`],
      retention: RetentionPolicy.Limits,
      max_msgs_per_subject: 1,
      max_age: nanos(opts.dlqMaxAge),
    },
  ];
}

/**
 * Default lease length and task consumer `ack_wait`, in ms. Short, so that the task of a worker
 * that died (SIGKILL, a lost host) is redelivered within seconds; a live worker keeps its tasks
 * alive every third of it (progress acks and lease renewals, lease-keepalive.ts). See
 * docs/reliability.md, "Recovery from a dead worker".
 */
export const DEFAULT_ACK_WAIT_MS = 5_000;

/** Durable pull consumer options for the task consumer. */
export interface TaskConsumerOptions {
  /** Lease length: a task not acked or kept alive within it is redelivered. @default DEFAULT_ACK_WAIT_MS (5 s) */
  ackWait?: number;
  /** In-flight cap across all workers of the namespace. @default 1000 */
  maxAckPending?: number;
  /** Server-side delivery cap; -1 leaves retries to the worker's attempt counting. @default -1 */
  maxDeliver?: number;
}

/** Configuration of the durable task consumer shared by all workers of a namespace. */
export function taskConsumerConfig(names: CodingNames, options: TaskConsumerOptions = {}): ConsumerConfig {
  return {
    durable_name: names.consumer,
    name: names.consumer,
    description: "station-coding workers",
    ack_policy: AckPolicy.Explicit,
    deliver_policy: DeliverPolicy.All,
    filter_subject: names.taskSubject,
    ack_wait: nanos(options.ackWait ?? DEFAULT_ACK_WAIT_MS),
    max_ack_pending: options.maxAckPending ?? 1000,
    max_deliver: options.maxDeliver ?? -1,
    max_waiting: 512,
  } as ConsumerConfig;
}

const COMPARED_STREAM_FIELDS = ["retention", "storage", "num_replicas", "max_msgs_per_subject"] as const;

function compareStream(kind: string, want: Partial<StreamConfig>, have: StreamConfig): string[] {
  const label = `${kind} ${have.name}`;
  const differences: string[] = [];
  const wantSubjects = [...(want.subjects ?? [])].sort();
  const haveSubjects = [...(have.subjects ?? [])].sort();
  if (want.subjects && JSON.stringify(wantSubjects) !== JSON.stringify(haveSubjects)) {
    differences.push(
      `${label}: subjects are ${JSON.stringify(haveSubjects)}, expected ${JSON.stringify(wantSubjects)}`,
    );
  }
  for (const field of COMPARED_STREAM_FIELDS) {
    const expected = want[field];
    if (expected === undefined) continue;
    const actual = have[field];
    if (actual !== expected) {
      differences.push(
        `${label}: ${field} is ${JSON.stringify(actual)}, expected ${JSON.stringify(expected)}`,
      );
    }
  }
  return differences;
}

function isNotFound(err: unknown): boolean {
  return (
    (err instanceof JetStreamApiError && err.code === 10059) ||
    (err instanceof Error && err.message === "stream not found")
  );
}

function isAlreadyInUse(err: unknown): boolean {
  // A create racing another create of the same stream is refused as "already in use" or, on
  // nats-server 2.9, as "subjects overlap with an existing stream" (10065).
  return (
    err instanceof JetStreamApiError &&
    (err.code === 10058 || err.code === 10065 || /already in use|subjects overlap/.test(err.message))
  );
}

/** Wraps permission errors so callers get a clear, typed error instead of a timeout or a raw one. */
function rethrow(what: string, err: unknown): never {
  if (err instanceof StationError) throw err;
  const message = err instanceof Error ? err.message : String(err);
  if (/permission/i.test(message) || /authorization/i.test(message)) {
    throw new PermissionDeniedError(`${what}: permission denied (${message})`, { cause: err });
  }
  throw new StationError(ErrorCodes.Internal, `${what}: ${message}`, { cause: err, retryable: true });
}

async function streamInfo(jsm: JetStreamManager, name: string): Promise<StreamInfo | undefined> {
  try {
    return await jsm.streams.info(name);
  } catch (err) {
    if (isNotFound(err)) return undefined;
    throw err;
  }
}

/**
 * Makes sure a stream exists with a compatible configuration. Creates it when missing; when many
 * processes race, the losers re-read and compare. Never changes an existing stream.
 */
async function ensureStream(
  jsm: JetStreamManager,
  kind: string,
  config: Partial<StreamConfig>,
  create: () => Promise<unknown>,
  report: TopologyReport,
  differences: string[],
  checkReplicas: boolean,
): Promise<void> {
  const name = config.name ?? "";
  try {
    let info = await streamInfo(jsm, name);
    if (!info) {
      try {
        await create();
        report.created.push(`${kind} ${name}`);
        return;
      } catch (err) {
        if (!isAlreadyInUse(err)) throw err;
        // The winner's stream may take a moment to show up; a real overlap with another stream never does.
        for (let i = 0; i < 20 && !info; i += 1) {
          info = await streamInfo(jsm, name);
          if (!info) await new Promise((resolve) => setTimeout(resolve, 50));
        }
        if (!info) throw err;
      }
    }
    const found = compareStream(
      kind,
      checkReplicas ? config : { ...config, num_replicas: undefined },
      info.config,
    );
    differences.push(...found);
    if (found.length === 0) report.existing.push(`${kind} ${name}`);
  } catch (err) {
    rethrow(`ensuring ${kind} ${name}`, err);
  }
}

/** Whether the connected server supports per-key TTL in KV (nats-server 2.11+). */
export function supportsPerKeyTTL(nc: NatsConnection): boolean {
  const version = nc.info?.version ?? "0.0.0";
  const [major = 0, minor = 0] = version.split(".").map((part) => Number.parseInt(part, 10));
  return major > 2 || (major === 2 && minor >= 11);
}

/**
 * Creates or checks every stream, KV bucket and object store of one namespace (single-tenant or
 * one org). Idempotent and safe when many processes call it at once; an existing resource with an
 * incompatible configuration is reported in a {@link TopologyConflictError} naming each difference
 * and is never overwritten.
 */
export async function ensureTopology(
  nc: NatsConnection,
  names: CodingNames,
  options: TopologyOptions = {},
): Promise<TopologyReport> {
  const opts = resolveTopologyOptions(options);
  // Replicas are checked only when the caller asks for a count: a worker or dispatcher that just
  // wants the topology to exist must accept one that `init --replicas 3` made for a cluster.
  const checkReplicas = options.replicas !== undefined;
  const jsm = await jetstreamManager(nc).catch((err: unknown) => rethrow("connecting to JetStream", err));
  const report: TopologyReport = { created: [], existing: [] };
  const differences: string[] = [];
  const storage = opts.storage === "memory" ? StorageType.Memory : StorageType.File;

  for (const config of streamConfigs(names, opts)) {
    await ensureStream(
      jsm,
      "stream",
      config,
      () => jsm.streams.add(config),
      report,
      differences,
      checkReplicas,
    );
  }

  const kvm = new Kvm(nc);
  const buckets: { name: string; history: number; ttl?: number; perKeyTTL?: boolean }[] = [
    { name: names.kv.sessions, history: 5 },
    { name: names.kv.state, history: 1, perKeyTTL: true },
    { name: names.kv.leases, history: 1, ttl: 7 * 86_400_000 },
    { name: names.kv.workers, history: 1, ttl: 3_600_000 },
    { name: names.kv.secrets, history: 1 },
    // The task index is kept as long as results are: a task listed is a task whose result is there.
    { name: names.kv.tasks, history: 1, ttl: opts.resultsMaxAge },
  ];
  for (const bucket of buckets) {
    const config: Partial<StreamConfig> = {
      name: `KV_${bucket.name}`,
      max_msgs_per_subject: bucket.history,
      storage,
      num_replicas: opts.replicas,
    };
    await ensureStream(
      jsm,
      "kv bucket",
      config,
      () =>
        kvm.create(bucket.name, {
          history: bucket.history,
          storage,
          replicas: opts.replicas,
          ...(bucket.ttl ? { ttl: bucket.ttl } : {}),
          ...(bucket.perKeyTTL && supportsPerKeyTTL(nc) ? { markerTTL: 1_000 } : {}),
        }),
      report,
      differences,
      checkReplicas,
    );
  }

  const objm = new Objm(nc);
  await ensureStream(
    jsm,
    "object store",
    { name: `OBJ_${names.objectStore}`, storage, num_replicas: opts.replicas },
    () => objm.create(names.objectStore, { storage, replicas: opts.replicas }),
    report,
    differences,
    checkReplicas,
  );

  if (differences.length > 0) throw new TopologyConflictError(differences);
  return report;
}

/**
 * Creates the durable task consumer, or brings its tunable settings (ack wait, in-flight cap,
 * delivery cap) to the given values. A consumer with another filter subject is a conflict.
 */
export async function ensureTaskConsumer(
  nc: NatsConnection,
  names: CodingNames,
  options: TaskConsumerOptions = {},
): Promise<ConsumerConfig> {
  const want = taskConsumerConfig(names, options);
  try {
    const jsm = await jetstreamManager(nc);
    let existing: ConsumerConfig | undefined;
    try {
      existing = (await jsm.consumers.info(names.streams.tasks, names.consumer)).config;
    } catch (err) {
      if (!(err instanceof JetStreamApiError && err.code === 10014)) throw err;
    }
    if (!existing) {
      try {
        return (await jsm.consumers.add(names.streams.tasks, want)).config;
      } catch (err) {
        if (!(err instanceof JetStreamApiError)) throw err;
        existing = (await jsm.consumers.info(names.streams.tasks, names.consumer)).config;
      }
    }
    if (existing.filter_subject !== want.filter_subject) {
      throw new TopologyConflictError([
        `consumer ${names.streams.tasks}/${names.consumer}: filter_subject is ${JSON.stringify(
          existing.filter_subject,
        )}, expected ${JSON.stringify(want.filter_subject)}`,
      ]);
    }
    if (
      existing.ack_wait !== want.ack_wait ||
      existing.max_ack_pending !== want.max_ack_pending ||
      existing.max_deliver !== want.max_deliver
    ) {
      const updated = await jsm.consumers.update(names.streams.tasks, names.consumer, {
        ack_wait: want.ack_wait,
        max_ack_pending: want.max_ack_pending,
        max_deliver: want.max_deliver,
      });
      return updated.config;
    }
    return existing;
  } catch (err) {
    rethrow(`ensuring consumer ${names.streams.tasks}/${names.consumer}`, err);
  }
}
