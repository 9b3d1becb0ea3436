import { randomUUID } from "node:crypto";
import type { CleanupPolicy, GitSpec, TaskInput, TaskOp, WorkspaceScope } from "@station-coding/protocol";

/** Options every coding tool call takes. */
export interface ToolCallOptions {
  /** Task id of the call. @default `<op>-<random uuid>` */
  taskID?: string;
  /** Worker-side time limit in ms. @default the worker's task timeout */
  timeout?: number;
  /** Client-side wait limit for the result (ms or `"30s"`); see `TaskHandle.result`. @default no limit */
  wait?: number | string;
  /** Free-form labels carried into the result and logs. */
  metadata?: Record<string, string>;
}

/** Input of `codingOpen`: open (or reuse) a session's workspace, cloning a repository if given. */
export interface CodingOpenInput extends ToolCallOptions {
  /** Station session name. */
  session: string;
  /** Workspace directory name under the worker's workspace root. */
  workspace: string;
  /** Repository to clone into the workspace. */
  git?: GitSpec;
  /** Workspace lifetime. @default "agent" */
  scope?: WorkspaceScope;
  /** Workflow id for `workflow` scope. */
  scopeID?: string;
  /** When the workspace is deleted. @default the worker's policy */
  cleanup?: CleanupPolicy;
  /** Agent whose context the tools read and write. @default the session name */
  agentID?: string;
}

/** Input of `code`: run a prompt in a session. */
export interface CodeInput
  extends
    Omit<ToolCallOptions, "wait">,
    Pick<TaskInput, "workspace" | "agent" | "model" | "agentID" | "inputs" | "snapshot"> {
  /** Station session name. */
  session: string;
  /** What the coding agent should do. */
  prompt: string;
  /** Reuse the session's OpenCode conversation when it still exists. @default true */
  continue?: boolean;
}

/** Input of `codingClose`: end a session (the worker applies the workspace's cleanup policy). */
export interface CodingCloseInput extends ToolCallOptions {
  /** Station session name. */
  session: string;
  /** Workspace of the session, when it is not named after the session. */
  workspace?: string;
}

/** Input of `commit`: commit the session's workspace. */
export interface CommitInput extends ToolCallOptions {
  /** Station session name. */
  session: string;
  /** Commit message. */
  message: string;
  /** Stage every change (`git add -A`) first. @default true */
  all?: boolean;
  /** Workspace of the session, when it is not named after the session. */
  workspace?: string;
}

/** Input of `push`: push the session's workspace. */
export interface PushInput extends ToolCallOptions {
  /** Station session name. */
  session: string;
  /** Remote to push to. @default the branch's upstream, else "origin" */
  remote?: string;
  /** Branch to push. @default the current branch */
  branch?: string;
  /** Set the upstream of the branch (`--set-upstream`). */
  setUpstream?: boolean;
  /** Workspace of the session, when it is not named after the session. */
  workspace?: string;
}

/** A fresh task id for a tool call: `<op>-<uuid>`. */
export function newTaskID(op: TaskOp): string {
  return `${op}-${randomUUID()}`;
}

/** The task fields common to every tool call. */
export function baseTask(op: TaskOp, input: ToolCallOptions & { session: string }): TaskInput {
  return {
    taskID: input.taskID ?? newTaskID(op),
    op,
    session: { name: input.session },
    ...(input.timeout !== undefined ? { timeout: input.timeout } : {}),
    ...(input.metadata !== undefined ? { metadata: input.metadata } : {}),
  };
}
