import { z } from "zod";
import { ErrorCodes, ValidationError } from "./errors.js";
import {
  MAX_COMMIT_MESSAGE_LENGTH,
  MAX_GIT_ARG_LENGTH,
  MAX_IDENTIFIER_LENGTH,
  MAX_METADATA_BYTES,
  MAX_METADATA_ENTRIES,
  MAX_METADATA_KEY_LENGTH,
  MAX_METADATA_VALUE_LENGTH,
  MAX_PROMPT_BYTES,
  MAX_PROMPT_LENGTH,
  MAX_TIMEOUT_MS,
  utf8Length,
} from "./limits.js";
import { FileName, Name, parseWith } from "./schema-helpers.js";
import type { CodingNames } from "./subjects.js";

// eslint-disable-next-line no-control-regex
const CONTROL = /[\u0000-\u001f\u007f]/;

/** A string passed to git (URL, branch, ref, path): no leading "-" and no control characters. */
const GitArg = z
  .string()
  .max(MAX_GIT_ARG_LENGTH, `must be at most ${MAX_GIT_ARG_LENGTH} characters`)
  .superRefine((value, ctx) => {
    if (value.length === 0) ctx.addIssue({ code: "custom", message: "must not be empty" });
    else if (value.startsWith("-")) ctx.addIssue({ code: "custom", message: 'must not start with "-"' });
    else if (CONTROL.test(value))
      ctx.addIssue({ code: "custom", message: "must not contain control characters" });
  });

/** An agent, provider or model name: quoted in error messages, so bounded. */
const Identifier = z
  .string()
  .max(MAX_IDENTIFIER_LENGTH, `must be at most ${MAX_IDENTIFIER_LENGTH} characters`);

/** The prompt: echoed in the `prompt_sent` event, so bounded in characters and in bytes. */
const Prompt = z
  .string()
  .max(MAX_PROMPT_LENGTH, `must be at most ${MAX_PROMPT_LENGTH} characters; stage larger inputs as files`)
  .refine(
    (value) => utf8Length(value) <= MAX_PROMPT_BYTES,
    `must be at most ${MAX_PROMPT_BYTES} bytes in UTF-8; stage larger inputs as files`,
  )
  .meta({
    description: `At most ${MAX_PROMPT_LENGTH} characters and ${MAX_PROMPT_BYTES} bytes in UTF-8 (echoed in the prompt_sent event).`,
  });

/** Free-form labels, copied into the result: bounded so that the result always fits in a message. */
const Metadata = z
  .record(z.string(), z.string())
  .superRefine((labels, ctx) => {
    const keys = Object.keys(labels);
    if (keys.length > MAX_METADATA_ENTRIES) {
      ctx.addIssue({
        code: "custom",
        message: `must have at most ${MAX_METADATA_ENTRIES} entries (has ${keys.length})`,
      });
      return;
    }
    for (const key of keys) {
      if (key.length > MAX_METADATA_KEY_LENGTH) {
        ctx.addIssue({
          code: "custom",
          path: [key],
          message: `key must be at most ${MAX_METADATA_KEY_LENGTH} characters`,
        });
        return;
      }
      if ((labels[key] ?? "").length > MAX_METADATA_VALUE_LENGTH) {
        ctx.addIssue({
          code: "custom",
          path: [key],
          message: `must be at most ${MAX_METADATA_VALUE_LENGTH} characters`,
        });
        return;
      }
    }
    const bytes = utf8Length(JSON.stringify(labels));
    if (bytes > MAX_METADATA_BYTES) {
      ctx.addIssue({
        code: "custom",
        message: `must be at most ${MAX_METADATA_BYTES} bytes as JSON (is ${bytes})`,
      });
    }
  })
  .meta({
    maxProperties: MAX_METADATA_ENTRIES,
    propertyNames: { type: "string", maxLength: MAX_METADATA_KEY_LENGTH },
    additionalProperties: { type: "string", maxLength: MAX_METADATA_VALUE_LENGTH },
    description: `Free-form labels carried into the result and logs: at most ${MAX_METADATA_ENTRIES} entries, keys of at most ${MAX_METADATA_KEY_LENGTH} characters, values of at most ${MAX_METADATA_VALUE_LENGTH} characters, at most ${MAX_METADATA_BYTES} bytes as JSON.`,
  });

/** Git repository for a workspace. */
export const GitSpec = z.object({
  /** Repository URL (https or ssh by default; see the worker's URL policy). */
  url: GitArg,
  /** Branch to clone or check out. */
  branch: GitArg.optional(),
  /** Commit, tag or other ref to check out after cloning. */
  ref: GitArg.optional(),
  /** Token for private repositories (existing-format compatibility; prefer `tokenFromKV`). */
  token: z.string().optional(),
  /** Key in the secrets KV bucket that holds the token. */
  tokenFromKV: Name.optional(),
  /** Pull (`--ff-only`) when the workspace is reused. @default true */
  pull: z.boolean().optional(),
  /** Shallow clone depth. */
  depth: z.number().int().positive().optional(),
  /** Sparse checkout paths. */
  sparse: z.array(GitArg).max(100).optional(),
});
/** Git repository for a workspace. */
export type GitSpec = z.infer<typeof GitSpec>;

/** Workspace lifetime: `agent` (one task or run) or `workflow` (kept across the workflow's tasks). */
export const WorkspaceScope = z.enum(["agent", "workflow"]);
/** Workspace lifetime. */
export type WorkspaceScope = z.infer<typeof WorkspaceScope>;

/** When a workspace is deleted. */
export const CleanupPolicy = z.enum(["on_session_end", "on_success", "manual"]);
/** When a workspace is deleted. */
export type CleanupPolicy = z.infer<typeof CleanupPolicy>;

/** What a task asks the worker to do. `code` runs the prompt; the others need no model call. */
export const TaskOp = z.enum(["code", "open", "close", "commit", "push"]);
/** What a task asks the worker to do. */
export type TaskOp = z.infer<typeof TaskOp>;

/**
 * A coding task as published on the task subject.
 *
 * The minimal task is `{"taskID": "...", "prompt": "..."}`; every other field is optional and
 * filled by {@link resolveTask}. Every task in Station's existing format parses unchanged.
 */
export const Task = z
  .object({
    taskID: Name,
    /** @default "code" */
    op: TaskOp.optional(),
    prompt: Prompt.optional(),
    session: z
      .object({
        /** Station session name. @default the taskID */
        name: Name.optional(),
        /** Reuse the OpenCode session stored under this name when it still exists. @default true */
        continue: z.boolean().optional(),
      })
      .optional(),
    workspace: z
      .object({
        /** Directory name under the worker's workspace root. @default the session name */
        name: Name.optional(),
        git: GitSpec.optional(),
        /** @default "agent" */
        scope: WorkspaceScope.optional(),
        /** Workflow id for `workflow` scope. */
        scopeID: Name.optional(),
        /** Overrides the worker's cleanup policy for this workspace. */
        cleanup: CleanupPolicy.optional(),
      })
      .optional(),
    /** OpenCode agent name. */
    agent: Identifier.optional(),
    model: z.object({ providerID: Identifier, modelID: Identifier }).optional(),
    /** Time limit in milliseconds, at most {@link MAX_TIMEOUT_MS}. @default the worker's task timeout */
    timeout: z
      .number()
      .int()
      .positive()
      .max(MAX_TIMEOUT_MS, `must be at most ${MAX_TIMEOUT_MS} ms (about 24.8 days)`)
      .meta({ description: `Milliseconds, at most ${MAX_TIMEOUT_MS} (about 24.8 days).` })
      .optional(),
    callback: z
      .object({
        streamSubject: z.string().optional(),
        resultSubject: z.string().optional(),
      })
      .optional(),
    /** Tenant org; must match the subject the task arrived on. */
    org: Name.optional(),
    /** Agent whose context the station tools read and write. @default the session name */
    agentID: Name.optional(),
    /** Files staged beforehand at `input/<taskID>/<name>` in the object store, copied into the workspace. */
    inputs: z.array(FileName).max(100).optional(),
    /** For `op: "commit"`: the commit to make. */
    commit: z
      .object({
        message: z
          .string()
          .min(1)
          .max(MAX_COMMIT_MESSAGE_LENGTH, `must be at most ${MAX_COMMIT_MESSAGE_LENGTH} characters`),
        /** Stage every change (`git add -A`) first. @default true */
        all: z.boolean().optional(),
      })
      .optional(),
    /** For `op: "push"`: where to push. */
    push: z
      .object({
        remote: GitArg.optional(),
        branch: GitArg.optional(),
        setUpstream: z.boolean().optional(),
      })
      .optional(),
    /** Store a snapshot of the workspace after the task. */
    snapshot: z.boolean().optional(),
    /** Free-form labels carried into the result and logs (bounded, see the MAX_METADATA_* limits). */
    metadata: Metadata.optional(),
  })
  .superRefine((task, ctx) => {
    const op = task.op ?? "code";
    if (op === "code" && (task.prompt === undefined || task.prompt.trim() === "")) {
      ctx.addIssue({ code: "custom", path: ["prompt"], message: "is required and must not be empty" });
    }
    if (op === "commit" && !task.commit) {
      ctx.addIssue({ code: "custom", path: ["commit"], message: 'is required when op is "commit"' });
    }
  });
/** A coding task as published on the task subject. */
export type Task = z.infer<typeof Task>;
/** A task as a client writes it (before defaults). */
export type TaskInput = z.input<typeof Task>;

/** A task with every default applied; what the worker runs. */
export interface ResolvedTask extends Task {
  op: TaskOp;
  session: { name: string; continue: boolean };
  workspace: Omit<NonNullable<Task["workspace"]>, "name" | "scope"> & { name: string; scope: WorkspaceScope };
  callback: { streamSubject: string; resultSubject: string };
  agentID: string;
}

/**
 * Parses a task from raw bytes, a JSON string or an object.
 *
 * @throws ValidationError (code INVALID_TASK) naming the field and the rule.
 */
export function parseTask(input: unknown): Task {
  let value: unknown = input;
  if (input instanceof Uint8Array) value = new TextDecoder().decode(input);
  if (typeof value === "string") {
    try {
      value = JSON.parse(value);
    } catch (err) {
      throw new ValidationError(
        "task",
        "json",
        `task: not valid JSON (${(err as Error).message})`,
        ErrorCodes.InvalidTask,
      );
    }
  }
  if (value === null || typeof value !== "object" || Array.isArray(value)) {
    throw new ValidationError("task", "object", "task: must be a JSON object", ErrorCodes.InvalidTask);
  }
  return parseWith(Task, value, "task");
}

/**
 * Applies the defaults: the session defaults to the taskID, the workspace to the session name,
 * the callbacks to the namespace's subjects for this taskID.
 *
 * @throws ValidationError when the task names another org, or callback subjects outside its namespace.
 */
export function resolveTask(task: Task, names: CodingNames): ResolvedTask {
  if (task.org !== undefined && task.org !== names.org) {
    throw new ValidationError(
      "org",
      "namespace",
      `org ${JSON.stringify(task.org)}: does not match the subject the task was published on (${names.taskSubject})`,
      ErrorCodes.InvalidTask,
    );
  }
  const sessionName = task.session?.name ?? task.taskID;
  const streamSubject = names.streamSubject(task.taskID);
  const resultSubject = names.resultSubject(task.taskID);
  const checkCallback = (field: string, given: string | undefined, expected: string): void => {
    if (given !== undefined && given !== expected) {
      throw new ValidationError(
        field,
        "callback",
        `${field} ${JSON.stringify(given)}: must be ${expected} (events and results are stored per task)`,
        ErrorCodes.InvalidTask,
      );
    }
  };
  checkCallback("callback.streamSubject", task.callback?.streamSubject, streamSubject);
  checkCallback("callback.resultSubject", task.callback?.resultSubject, resultSubject);
  return {
    ...task,
    op: task.op ?? "code",
    session: { name: sessionName, continue: task.session?.continue ?? true },
    workspace: {
      ...task.workspace,
      name: task.workspace?.name ?? sessionName,
      scope: task.workspace?.scope ?? "agent",
    },
    callback: { streamSubject, resultSubject },
    agentID: task.agentID ?? sessionName,
  };
}

/**
 * The taskID of a message that failed validation, when it can be recovered safely
 * (so that the sender still gets an error result).
 */
export function recoverTaskID(input: unknown): string | undefined {
  let value: unknown = input;
  try {
    if (input instanceof Uint8Array) value = new TextDecoder().decode(input);
    if (typeof value === "string") value = JSON.parse(value);
  } catch {
    return undefined;
  }
  if (value === null || typeof value !== "object") return undefined;
  const id = (value as { taskID?: unknown }).taskID;
  return typeof id === "string" && Name.safeParse(id).success ? id : undefined;
}
