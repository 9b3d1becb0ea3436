import { z } from "zod";
import { ArtifactRef } from "./artifacts.js";
import { Timestamp } from "./schema-helpers.js";

/** Final state of a task. */
export const TaskStatus = z.enum(["completed", "error", "timeout", "cancelled"]);
/** Final state of a task. */
export type TaskStatus = z.infer<typeof TaskStatus>;

/** Token counts summed over every model step of a task. */
export const TokenUsage = z.object({
  input: z.number().nonnegative(),
  output: z.number().nonnegative(),
  reasoning: z.number().nonnegative(),
  cacheRead: z.number().nonnegative(),
  cacheWrite: z.number().nonnegative(),
});
/** Token counts summed over every model step of a task. */
export type TokenUsage = z.infer<typeof TokenUsage>;

/** A file the task changed. */
export const ChangedFile = z.object({
  path: z.string(),
  /** `added`, `modified`, `deleted`, `renamed`, … */
  status: z.string(),
  insertions: z.number().int().nonnegative().optional(),
  deletions: z.number().int().nonnegative().optional(),
  binary: z.boolean().optional(),
});
/** A file the task changed. */
export type ChangedFile = z.infer<typeof ChangedFile>;

/** What a commit (or push) produced. */
export const CommitInfo = z.object({
  hash: z.string(),
  branch: z.string().optional(),
  message: z.string().optional(),
  filesChanged: z.number().int().nonnegative(),
  insertions: z.number().int().nonnegative(),
  deletions: z.number().int().nonnegative(),
});
/** What a commit produced. */
export type CommitInfo = z.infer<typeof CommitInfo>;

/** The final result of a task, published once on its result subject. */
export const TaskResult = z.object({
  taskID: z.string(),
  status: TaskStatus,
  /** The agent's final text. */
  result: z.string().optional(),
  /** Human-readable error message. */
  error: z.string().optional(),
  /** Short class name of the failure. */
  errorType: z.string().optional(),
  /** Stable error code (see `ErrorCodes`). */
  errorCode: z.string().optional(),
  /** Whether retrying the task could help. */
  retryable: z.boolean().optional(),
  session: z.object({
    name: z.string(),
    opencodeID: z.string(),
    messageCount: z.number().int().nonnegative(),
    /** True when a new OpenCode session began because the stored one could not be restored. */
    replaced: z.boolean().optional(),
    /** True when the conversation was restored from an export on this worker. */
    restored: z.boolean().optional(),
  }),
  workspace: z.object({
    name: z.string(),
    path: z.string(),
    git: z.object({ branch: z.string(), commit: z.string(), dirty: z.boolean() }).optional(),
  }),
  metrics: z.object({
    /** Milliseconds from the start of the run to the result. */
    duration: z.number().nonnegative(),
    promptTokens: z.number().nonnegative().optional(),
    completionTokens: z.number().nonnegative().optional(),
    toolCalls: z.number().int().nonnegative(),
    streamEvents: z.number().int().nonnegative(),
    tokens: TokenUsage.optional(),
    /** Cost in the provider's currency (USD for most). */
    cost: z.number().nonnegative().optional(),
    model: z.string().optional(),
    provider: z.string().optional(),
    finishReason: z.string().optional(),
    /** Model steps (assistant messages) in the turn. */
    steps: z.number().int().nonnegative().optional(),
    /** Delivery attempt that produced this result. */
    attempts: z.number().int().positive().optional(),
  }),
  /** Files changed and commits made since the task started. */
  changes: z
    .object({
      files: z.array(ChangedFile),
      commits: z.array(z.object({ hash: z.string(), subject: z.string() })),
    })
    .optional(),
  artifacts: z.array(ArtifactRef).optional(),
  /** Output of `op: "commit"` and `op: "push"`. */
  commit: CommitInfo.optional(),
  push: z.object({ remote: z.string(), branch: z.string(), commit: z.string() }).optional(),
  workerID: z.string().optional(),
  org: z.string().optional(),
  completedAt: Timestamp.optional(),
  metadata: z.record(z.string(), z.string()).optional(),
  /** Text in this result was cut to fit the server's max_payload; `fullResult` holds it whole. */
  truncated: z.boolean().optional(),
  /** The whole result (JSON), stored in the object store when it was too large to publish. */
  fullResult: ArtifactRef.optional(),
  /**
   * `"off"` when the worker ran the agent without its OS sandbox (the operator set `sandbox: off`):
   * the agent's tools could then reach everything the worker can. Absent when the sandbox was on.
   */
  sandbox: z.literal("off").optional(),
});
/** The final result of a task. */
export type TaskResult = z.infer<typeof TaskResult>;
