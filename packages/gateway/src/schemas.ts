import { z } from "@hono/zod-openapi";
import { jsonSchemas } from "@station-coding/protocol";

/** Where a task is: waiting, running, or the final status of its result. */
export const TaskState = z
  .enum(["queued", "running", "completed", "error", "cancelled", "timeout"])
  .openapi("TaskState");

/** The links of a task. */
export const TaskLinks = z
  .object({ self: z.string(), events: z.string(), result: z.string(), cancel: z.string() })
  .openapi("TaskLinks");

/** The answer to `POST /v1/tasks`. */
export const SubmitAccepted = z
  .object({
    taskID: z.string(),
    status: TaskState,
    /** True when the task already existed (the same Idempotency-Key or taskID): nothing new runs. */
    duplicate: z.boolean(),
    links: TaskLinks,
  })
  .openapi("SubmitAccepted");

/** The few result metrics a task view shows. */
export const TaskMetrics = z
  .object({
    duration: z.number().optional(),
    tokens: z.number().optional(),
    inputTokens: z.number().optional(),
    outputTokens: z.number().optional(),
    cost: z.number().optional(),
    toolCalls: z.number().optional(),
    model: z.string().optional(),
    provider: z.string().optional(),
  })
  .openapi("TaskMetrics");

/** A task as `GET /v1/tasks/{taskID}` and the task list show it. */
export const TaskView = z
  .object({
    taskID: z.string(),
    status: TaskState,
    op: z.string().optional(),
    worker: z.string().optional(),
    attempts: z.number().int().optional(),
    submittedAt: z.string().optional(),
    startedAt: z.string().optional(),
    finishedAt: z.string().optional(),
    /** The start of the prompt. */
    prompt: z.string().optional(),
    session: z.string().optional(),
    metrics: TaskMetrics.optional(),
    errorCode: z.string().optional(),
    error: z.string().optional(),
    /** The result, once there is one (`GET /v1/tasks/{taskID}` only). */
    result: z
      .record(z.string(), z.unknown())
      .optional()
      .openapi({ description: "The result: a TaskResult (components.schemas.TaskResult)" }),
    links: TaskLinks,
  })
  .openapi("TaskView");

/** A page of tasks, newest first. */
export const TaskList = z
  .object({ items: z.array(TaskView), next: z.string().nullable() })
  .openapi("TaskList");

/** One object of a task in the object store. */
export const ArtifactItem = z
  .object({
    key: z.string(),
    kind: z.string(),
    size: z.number().int(),
    digest: z.string().optional(),
    /** Where to download it from this gateway. */
    url: z.string(),
  })
  .openapi("ArtifactItem");

/** A task's objects. */
export const ArtifactList = z
  .object({ items: z.array(ArtifactItem), next: z.null() })
  .openapi("ArtifactList");

/** A list of plain records (sessions, workers, dead letters). */
export const RecordList = (ref: string) =>
  z.object({
    items: z.array(
      z.record(z.string(), z.unknown()).openapi({ description: `A ${ref} (components.schemas.${ref})` }),
    ),
    next: z.null(),
  });

/** An RFC 9457 problem. */
export const Problem = z
  .object({
    type: z.string(),
    title: z.string(),
    status: z.number().int(),
    detail: z.string(),
    instance: z.string().optional(),
    field: z.string().optional(),
    code: z.string().optional(),
    errors: z.array(z.object({ field: z.string(), message: z.string() })).optional(),
  })
  .openapi("Problem");

/** The body of `POST /v1/dead-letters/{taskID}/replay` (all optional). */
export const ReplayRequest = z
  .object({
    /** Secrets-bucket key of a git token, for a task whose inline token was removed. */
    tokenFromKV: z.string().min(1).optional(),
  })
  .strict()
  .openapi("ReplayRequest");

/** The body of `POST /v1/dead-letters/replay`: which dead letters to run again. */
export const BulkReplayRequest = z
  .object({
    /** Only these tasks. */
    taskIDs: z.array(z.string()).max(1000).optional(),
    /** Only dead letters with this error code. */
    errorCode: z.string().optional(),
    /** Only tasks dead at or after this time (ISO 8601). */
    since: z.iso.datetime({ offset: true }).optional(),
    /** At most this many. @default 100 */
    limit: z.number().int().min(1).max(1000).optional(),
  })
  .strict()
  .openapi("BulkReplayRequest");

/** The answer to a bulk replay. */
export const BulkReplayResult = z
  .object({
    replayed: z.array(z.string()),
    failed: z.array(z.object({ taskID: z.string(), detail: z.string() })),
  })
  .openapi("BulkReplayResult");

/** Who the bearer token is (`GET /v1/me`): what a client such as the console shows and enables. */
export const Me = z
  .object({
    /** The token's configured name (never the token). */
    name: z.string(),
    role: z.enum(["viewer", "operator", "admin"]),
    /** The token's org; absent for an admin or in single-tenant mode. */
    org: z.string().optional(),
    /** The orgs this token may name with `?org=` ("" is the single-tenant namespace). */
    orgs: z.array(z.string()),
  })
  .openapi("Me");

/** Throughput and cost over time of one org (`GET /v1/stats`). */
export const OrgStats = z
  .object({
    /** The org ("" is the single-tenant namespace). */
    org: z.string(),
    /** Tasks that reached a final status, per minute from `from` (hours × 60 buckets). */
    tasksPerMinute: z.array(z.number().int()),
    /** Their cost in USD per hour from `from` (hours buckets). */
    costPerHour: z.array(z.number()),
    totals: z.object({
      tasks: z.number().int(),
      completed: z.number().int(),
      cost: z.number(),
      tokens: z.number(),
    }),
  })
  .openapi("OrgStats");

/** The answer to `GET /v1/stats`: tasks finished by their `finishedAt`, per org visible to the token. */
export const Stats = z
  .object({
    /** Start of the first bucket (a minute boundary). */
    from: z.string(),
    /** End of the last bucket (exclusive): the end of the current minute. */
    to: z.string(),
    hours: z.number().int(),
    orgs: z.array(OrgStats),
  })
  .openapi("Stats");

/** One line of the cost table: an org's finished tasks of one provider and model. */
export const CostLine = z
  .object({
    org: z.string(),
    /** null: results that named no model. */
    model: z.string().nullable(),
    provider: z.string().optional(),
    tasks: z.number().int(),
    /** Input plus output tokens (older records without the split count here only). */
    tokens: z.number(),
    inputTokens: z.number(),
    outputTokens: z.number(),
    cost: z.number(),
  })
  .openapi("CostLine");

/** The answer to `GET /v1/costs`. */
export const CostTable = z
  .object({ since: z.string().nullable(), items: z.array(CostLine) })
  .openapi("CostTable");

/**
 * The wire schemas as OpenAPI components, from the protocol's JSON Schema documents (made from
 * its zod schemas): `Task` as published, `TaskSubmission` (the same with `taskID` optional),
 * `TaskResult`, `StreamEvent`, `SessionState`, `WorkerPresence`, `DeadLetter`.
 */
export function wireComponents(): Record<string, Record<string, unknown>> {
  const docs = jsonSchemas();
  const pick = (file: string): Record<string, unknown> => {
    const { $schema: _s, $id: _i, ...schema } = docs[file] ?? {};
    return schema;
  };
  const task = pick("task.schema.json");
  const required = Array.isArray(task.required) ? (task.required as string[]) : [];
  return {
    Task: task,
    TaskSubmission: {
      ...task,
      title: "task submission",
      description: "A task in the wire format; taskID is optional (the Idempotency-Key, else a new id).",
      required: required.filter((field) => field !== "taskID"),
    },
    TaskResult: pick("result.schema.json"),
    StreamEvent: pick("stream-event.schema.json"),
    SessionState: pick("session-state.schema.json"),
    WorkerPresence: pick("worker-presence.schema.json"),
    DeadLetter: pick("dead-letter.schema.json"),
  };
}
