import { z } from "zod";
import { ArtifactRef } from "./artifacts.js";
import { Timestamp } from "./schema-helpers.js";

/** Every stream event type. The first thirteen are Station's existing ones. */
export const EVENT_TYPES = [
  "session_created",
  "session_reused",
  "workspace_created",
  "workspace_reused",
  "git_clone",
  "git_pull",
  "git_checkout",
  "prompt_sent",
  "text",
  "thinking",
  "tool_start",
  "tool_end",
  "error",
  // station-coding additions
  "task_started",
  "session_restored",
  "permission",
  "artifact",
  "git_commit",
  "git_push",
] as const;

/** A tool call, as seen in `tool_start` and `tool_end`. */
export const ToolInfo = z.object({
  name: z.string(),
  callID: z.string(),
  args: z.record(z.string(), z.unknown()).optional(),
  /** Output, truncated when large (the full output is then in `artifact`). */
  output: z.string().optional(),
  /** Milliseconds from the tool's own start to its end. */
  duration: z.number().int().nonnegative().optional(),
  status: z.enum(["completed", "error"]).optional(),
  error: z.string().optional(),
  /** Exit code of a bash tool call. */
  exitCode: z.number().int().optional(),
  title: z.string().optional(),
  truncated: z.boolean().optional(),
  artifact: ArtifactRef.optional(),
});
/** A tool call. */
export type ToolInfo = z.infer<typeof ToolInfo>;

/** Git details of a git event. */
export const GitInfo = z.object({
  url: z.string().optional(),
  branch: z.string().optional(),
  commit: z.string().optional(),
  ref: z.string().optional(),
  /** Milliseconds the git operation took. */
  duration: z.number().int().nonnegative().optional(),
  filesChanged: z.number().int().nonnegative().optional(),
  insertions: z.number().int().nonnegative().optional(),
  deletions: z.number().int().nonnegative().optional(),
  remote: z.string().optional(),
});
/** Git details of a git event. */
export type GitInfo = z.infer<typeof GitInfo>;

/** The Station session and its OpenCode session. */
export const SessionRef = z.object({
  name: z.string(),
  opencodeID: z.string(),
});
/** The Station session and its OpenCode session. */
export type SessionRef = z.infer<typeof SessionRef>;

/** Workspace details of a workspace event. */
export const WorkspaceInfo = z.object({
  name: z.string(),
  path: z.string(),
  dirty: z.boolean().optional(),
  lastCommit: z.string().optional(),
  scope: z.enum(["agent", "workflow"]).optional(),
});
/** Workspace details of a workspace event. */
export type WorkspaceInfo = z.infer<typeof WorkspaceInfo>;

/** A permission or question prompt and how the worker's policy answered it. */
export const PermissionInfo = z.object({
  id: z.string(),
  kind: z.enum(["permission", "question"]),
  permission: z.string().optional(),
  patterns: z.array(z.string()).optional(),
  decision: z.enum(["once", "always", "reject"]),
  reason: z.string().optional(),
});
/** A permission or question prompt and how the worker's policy answered it. */
export type PermissionInfo = z.infer<typeof PermissionInfo>;

const eventFields = {
  taskID: z.string(),
  /** 1-based, strictly increasing per task. */
  seq: z.number().int().positive(),
  timestamp: Timestamp,
  /** Text for text/thinking/error/prompt_sent; the path for workspace events. */
  content: z.string().optional(),
  tool: ToolInfo.optional(),
  git: GitInfo.optional(),
  session: SessionRef.optional(),
  workspace: WorkspaceInfo.optional(),
  permission: PermissionInfo.optional(),
  artifact: ArtifactRef.optional(),
  /** Worker that emitted the event. */
  workerID: z.string().optional(),
  /** Delivery attempt of the task (1 on the first run). */
  attempt: z.number().int().positive().optional(),
  /** Stable error code, on `error` events. */
  errorCode: z.string().optional(),
  /** Text in this event was cut to fit the server's max_payload; `fullEvent` holds it whole. */
  truncated: z.boolean().optional(),
  /** The whole event as emitted (JSON), stored in the object store when it was too large to publish. */
  fullEvent: ArtifactRef.optional(),
};

const variant = <T extends (typeof EVENT_TYPES)[number]>(type: T) =>
  z.object({ ...eventFields, type: z.literal(type) });

/** A live event of a running task, published on the task's stream subject. Discriminated on `type`. */
export const StreamEvent = z.discriminatedUnion("type", [
  variant("session_created"),
  variant("session_reused"),
  variant("workspace_created"),
  variant("workspace_reused"),
  variant("git_clone"),
  variant("git_pull"),
  variant("git_checkout"),
  variant("prompt_sent"),
  variant("text"),
  variant("thinking"),
  variant("tool_start"),
  variant("tool_end"),
  variant("error"),
  variant("task_started"),
  variant("session_restored"),
  variant("permission"),
  variant("artifact"),
  variant("git_commit"),
  variant("git_push"),
]);
/** A live event of a running task. */
export type StreamEvent = z.infer<typeof StreamEvent>;
/** One of the stream event types. */
export type StreamEventType = StreamEvent["type"];
/** An event before the worker stamps it with taskID, seq and timestamp. */
export type EventDraft = DistributiveOmit<StreamEvent, "taskID" | "seq" | "timestamp">;

type DistributiveOmit<T, K extends PropertyKey> = T extends unknown ? Omit<T, K> : never;
