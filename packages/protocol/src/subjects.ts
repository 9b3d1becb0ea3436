import { validateName } from "./names.js";

/** Overrides for every subject, stream, bucket and store name. `{org}` in a value is replaced by the org. */
export interface CodingNamesOptions {
  /** Tenant org; when set every name is org-scoped (`org.<org>.coding.*`, `coding-sessions-<org>`, …). */
  org?: string;
  /** Subject overrides; `stream`, `result`, `cancel` and `dlq` are prefixes that the taskID is appended to. */
  subjects?: { task?: string; stream?: string; result?: string; cancel?: string; dlq?: string };
  /** KV bucket overrides. */
  kv?: {
    sessions?: string;
    state?: string;
    leases?: string;
    workers?: string;
    secrets?: string;
    tasks?: string;
  };
  /** Object store bucket override. @default "coding-artifacts" (`coding-artifacts-<org>` for an org) */
  objectStore?: string;
  /** Stream name overrides. */
  streams?: { tasks?: string; events?: string; results?: string; cancels?: string; dlq?: string };
  /** Durable name of the task consumer shared by all workers of this namespace. @default "coding-workers" */
  consumer?: string;
}

/** Every NATS name station-coding uses for one namespace (single-tenant, or one org). */
export interface CodingNames {
  /** The org these names belong to; undefined in single-tenant mode. */
  readonly org: string | undefined;
  /** Subject tasks are published to. */
  readonly taskSubject: string;
  /** Prefix of the per-task event subjects (`<prefix>.<taskID>`). */
  readonly streamPrefix: string;
  /** Prefix of the per-task result subjects. */
  readonly resultPrefix: string;
  /** Prefix of the per-task cancel subjects. */
  readonly cancelPrefix: string;
  /** Prefix of the per-task dead-letter subjects. */
  readonly dlqPrefix: string;
  /** Stream names. */
  readonly streams: {
    readonly tasks: string;
    readonly events: string;
    readonly results: string;
    readonly cancels: string;
    readonly dlq: string;
  };
  /** KV bucket names. */
  readonly kv: {
    readonly sessions: string;
    readonly state: string;
    readonly leases: string;
    readonly workers: string;
    readonly secrets: string;
    /** The task index: one small record per task, for listing and status (see `TaskIndex`). */
    readonly tasks: string;
  };
  /** Object store bucket name. */
  readonly objectStore: string;
  /** Durable task consumer name. */
  readonly consumer: string;
  /** Inbox prefix for request/reply, per org so that permissions can keep replies apart. */
  readonly inboxPrefix: string;
  /** Events subject of a task. */
  streamSubject(taskID: string): string;
  /** Result subject of a task. */
  resultSubject(taskID: string): string;
  /** Cancel subject of a task. */
  cancelSubject(taskID: string): string;
  /** Dead-letter subject of a task. */
  dlqSubject(taskID: string): string;
}

/** Root subject of the single-tenant namespace. */
export const SINGLE_TENANT_ROOT = "station.coding";

/**
 * Builds every subject, stream and bucket name for single-tenant mode (no org) or for one org.
 *
 * @throws ValidationError when the org or a taskID given to a builder is not a valid name.
 */
export function codingNames(options: CodingNamesOptions = {}): CodingNames {
  const org = options.org === undefined ? undefined : validateName("org", options.org);
  const fill = (value: string): string => (org === undefined ? value : value.replaceAll("{org}", org));
  const root = org === undefined ? SINGLE_TENANT_ROOT : `org.${org}.coding`;
  const bucket = (base: string): string => (org === undefined ? base : `${base}-${org}`);
  const stream = (base: string): string => (org === undefined ? base : `${base}_${org}`);

  const streamPrefix = fill(options.subjects?.stream ?? `${root}.stream`);
  const resultPrefix = fill(options.subjects?.result ?? `${root}.result`);
  const cancelPrefix = fill(options.subjects?.cancel ?? `${root}.cancel`);
  const dlqPrefix = fill(options.subjects?.dlq ?? `${root}.dlq`);
  const perTask = (prefix: string) => (taskID: string) => `${prefix}.${validateName("taskID", taskID)}`;

  return {
    org,
    taskSubject: fill(options.subjects?.task ?? `${root}.task`),
    streamPrefix,
    resultPrefix,
    cancelPrefix,
    dlqPrefix,
    streams: {
      tasks: fill(options.streams?.tasks ?? stream("CODING_TASKS")),
      events: fill(options.streams?.events ?? stream("CODING_EVENTS")),
      results: fill(options.streams?.results ?? stream("CODING_RESULTS")),
      cancels: fill(options.streams?.cancels ?? stream("CODING_CANCELS")),
      dlq: fill(options.streams?.dlq ?? stream("CODING_DLQ")),
    },
    kv: {
      sessions: fill(options.kv?.sessions ?? bucket("coding-sessions")),
      state: fill(options.kv?.state ?? bucket("coding-state")),
      leases: fill(options.kv?.leases ?? bucket("coding-leases")),
      workers: fill(options.kv?.workers ?? bucket("coding-workers")),
      secrets: fill(options.kv?.secrets ?? bucket("coding-secrets")),
      tasks: fill(options.kv?.tasks ?? bucket("coding-tasks")),
    },
    objectStore: fill(options.objectStore ?? bucket("coding-artifacts")),
    consumer: fill(options.consumer ?? "coding-workers"),
    inboxPrefix: org === undefined ? "_INBOX" : `_INBOX_${org}`,
    streamSubject: perTask(streamPrefix),
    resultSubject: perTask(resultPrefix),
    cancelSubject: perTask(cancelPrefix),
    dlqSubject: perTask(dlqPrefix),
  };
}

/** The org a task subject belongs to (`org.<org>.coding.task` -> `<org>`), or undefined for single-tenant. */
export function orgFromSubject(subject: string): string | undefined {
  const parts = subject.split(".");
  return parts[0] === "org" && parts.length > 2 ? parts[1] : undefined;
}

/** The last token of a per-task subject: the taskID. */
export function taskIDFromSubject(subject: string): string | undefined {
  const i = subject.lastIndexOf(".");
  return i < 0 ? undefined : subject.slice(i + 1);
}

/** Object store key of a staged input file. */
export function inputKey(taskID: string, fileName: string): string {
  return `input/${taskID}/${fileName}`;
}

/** Object store key of a task's patch. */
export function patchKey(taskID: string): string {
  return `output/${taskID}/changes.patch`;
}

/** Object store key of a large tool output or other task artifact. */
export function artifactKey(taskID: string, fileName: string): string {
  return `artifacts/${taskID}/${fileName}`;
}

/** Object store key of a workspace snapshot. */
export function snapshotKey(session: string, timestamp: string): string {
  return `snapshot/${session}/${timestamp}.tar.gz`;
}

/** Object store key of an exported OpenCode session, used to restore a session on another worker. */
export function sessionExportKey(session: string): string {
  return `sessions/${session}/opencode-export.json`;
}

/** Object store key of the task message of a dead letter too large to hold it (see `DeadLetter.payloadRef`). */
export function deadLetterPayloadKey(taskID: string): string {
  return `dlq/${taskID}/task.json`;
}

/** KV key of an agent context entry (agent id + context key). */
export function contextKey(agentID: string, key: string): string {
  return `${validateName("agentID", agentID)}.${validateName("key", key)}`;
}
