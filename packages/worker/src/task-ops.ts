import { context, trace } from "@opentelemetry/api";
import type { Span } from "@opentelemetry/api";
import type { CommitInfo, EventDraft, ResolvedTask, SessionState, Versioned } from "@station-coding/protocol";
import type { Logger } from "pino";
import type { PushInfo } from "./git/git-publish.js";
import type { RunnerDeps } from "./runner-deps.js";
import { exclusively } from "./runner-deps.js";
import type { OpenedSession, PromptResult } from "./shared/driver.js";
import type { TaskArtifacts } from "./task-artifacts.js";
import type { PreparedWorkspace } from "./workspace/workspace.js";

/** What a run of a task produced, as far as it got: a run that failed midway keeps what it had. */
export interface RunProducts {
  /** The task as run: a later task of a session acts on the session's own workspace. */
  task: ResolvedTask;
  workspace?: PreparedWorkspace;
  session?: OpenedSession;
  output?: PromptResult;
  commit?: CommitInfo;
  pushed?: PushInfo;
  /** Where the driver exported the agent session, for other workers. */
  exportKey?: string;
  /**
   * The session's record as read under the session lock (or, for a session locked for the first
   * time, while the lock was taken): its update need not read it again.
   */
  sessionRead?: { entry: StoredSession };
}

/** What an op needs from the run around it. */
export interface OpContext {
  d: RunnerDeps;
  artifacts: TaskArtifacts;
  /** Publishes a live event of the task. */
  emit: (event: EventDraft) => void;
  /** Aborted on cancel, timeout, lost lease or shutdown. */
  signal: AbortSignal;
  span: Span;
  log: Logger;
}

type StoredSession = Versioned<SessionState> | undefined;

/**
 * Runs a task's op: prepares its workspace (clone or sync, staged inputs), then does what the op
 * says, one case each:
 * - `open`: opens (or reuses, or restores) the agent session, then exports it;
 * - `code`: the same, with the prompt run in between;
 * - `commit`, `push`: commit or push the workspace, no model call;
 * - `close`: nothing more (the workspace goes when the run settles).
 * `run` is filled as it goes, so that the outcome of a failed run still has what exists.
 */
export async function runOp(ctx: OpContext, run: RunProducts): Promise<void> {
  const { d, emit, signal, log } = ctx;
  // Read under the session lock, unless the run knows it already (see TaskRunner.run).
  const known = run.sessionRead ? run.sessionRead.entry : await d.sessions.get(run.task.session.name);
  run.sessionRead = { entry: known };
  if (run.task.op !== "open" && known && run.task.workspace.name === run.task.session.name) {
    // Later tasks of a session act on the session's own workspace, wherever it was opened.
    run.task = { ...run.task, workspace: { ...run.task.workspace, name: known.value.workspaceName } };
  }
  const task = run.task;
  // The worker's own git and file work in the workspace runs while no tool call runs there.
  const workspace = await exclusively(
    d.driver,
    d.workspaces.pathFor(task.workspace.name, d.names.org),
    async () => {
      const prepared = await d.workspaces.prepare(task, d.names.org, emit, signal);
      // Known at once, so that a failure staging the inputs still releases it.
      run.workspace = prepared;
      throwIfAborted(signal);
      if (task.inputs?.length) await ctx.artifacts.stageInputs(task, prepared);
      return prepared;
    },
    { signal },
  );
  const git = { emit, signal, logger: log };
  switch (task.op) {
    case "open":
    case "code":
      run.session = await openSession(ctx, task, workspace, known);
      if (task.op === "code") run.output = await prompt(ctx, task, workspace, run.session);
      run.exportKey = await exportSession(ctx, task, workspace, run.session);
      return;
    case "commit":
      run.session = storedSession(ctx, known);
      run.commit = await exclusively(
        d.driver,
        workspace.path,
        () =>
          d.workspaces.commit(
            workspace,
            { message: task.commit?.message ?? "", all: task.commit?.all ?? true },
            git,
          ),
        { signal },
      );
      return;
    case "push":
      run.session = storedSession(ctx, known);
      run.pushed = await exclusively(
        d.driver,
        workspace.path,
        () =>
          d.workspaces.push(
            workspace,
            { ...task.push, ...(task.workspace.git ? { git: task.workspace.git } : {}) },
            git,
          ),
        { signal },
      );
      return;
    case "close":
      run.session = storedSession(ctx, known);
      return;
  }
}

/** Opens the task's agent session through the driver and says which it is in an event. */
async function openSession(
  ctx: OpContext,
  task: ResolvedTask,
  workspace: PreparedWorkspace,
  known: StoredSession,
): Promise<OpenedSession> {
  const { d, emit, signal, log } = ctx;
  const stored = task.session.continue ? known : undefined;
  const previous = stored?.value.opencodeID
    ? {
        opencodeID: stored.value.opencodeID,
        ...(stored.value.exportKey !== undefined ? { exportKey: stored.value.exportKey } : {}),
      }
    : undefined;
  const session = await withAbort(
    d.driver.openSession({
      task,
      org: d.names.org,
      directory: workspace.path,
      ...(previous ? { previous } : {}),
      signal,
      emit,
      logger: log,
    }),
    signal,
    d.options.abortGrace,
  );
  ctx.span.setAttribute("opencode.session_id", session.opencodeID);
  emit({
    type: session.reused ? "session_reused" : session.restored ? "session_restored" : "session_created",
    session: { name: task.session.name, opencodeID: session.opencodeID },
    ...(session.replaced
      ? {
          content: `stored session ${previous?.opencodeID ?? ""} is not available here; a new session began`,
        }
      : {}),
  });
  return session;
}

/** An op without a model call reports the session as it is stored. */
function storedSession(ctx: OpContext, known: StoredSession): OpenedSession {
  const session = { opencodeID: known?.value.opencodeID ?? "", reused: true };
  ctx.span.setAttribute("opencode.session_id", session.opencodeID);
  return session;
}

/** Runs the task's prompt in the session, emitting `prompt_sent` first. */
async function prompt(
  ctx: OpContext,
  task: ResolvedTask,
  workspace: PreparedWorkspace,
  session: OpenedSession,
): Promise<PromptResult> {
  const { d, emit, signal, log } = ctx;
  emit({ type: "prompt_sent", content: task.prompt ?? "" });
  // The task's span is the active one while the driver runs: its tool spans become children.
  const active = trace.setSpan(context.active(), ctx.span);
  return withAbort(
    context.with(active, () =>
      d.driver.prompt({
        task,
        org: d.names.org,
        session,
        directory: workspace.path,
        prompt: task.prompt ?? "",
        signal,
        emit,
        storeArtifact: (name, data, kind) => ctx.artifacts.store(task.taskID, name, data, kind),
        logger: log,
      }),
    ),
    signal,
    d.options.abortGrace,
  );
}

/** Lets the driver export the session for other workers; its key, or undefined. Never fails the task. */
async function exportSession(
  ctx: OpContext,
  task: ResolvedTask,
  workspace: PreparedWorkspace,
  session: OpenedSession,
): Promise<string | undefined> {
  const { driver } = ctx.d;
  if (!driver.afterTask) return undefined;
  const after = await driver
    .afterTask({ task, org: ctx.d.names.org, session, directory: workspace.path })
    .catch((err: unknown) => ctx.log.warn({ err }, "driver afterTask failed"));
  return after && after.exportKey ? after.exportKey : undefined;
}

function throwIfAborted(signal: AbortSignal): void {
  if (signal.aborted) throw signal.reason;
}

/**
 * Waits for `work`, but once `signal` aborts gives it only `grace` ms more to wind down, so that
 * a driver that ignores its signal cannot hang the task.
 */
async function withAbort<T>(work: Promise<T>, signal: AbortSignal, grace: number): Promise<T> {
  if (signal.aborted) {
    void work.catch(() => undefined);
    throw signal.reason;
  }
  let onAbort: (() => void) | undefined;
  const aborted = new Promise<never>((_, reject) => {
    onAbort = () => {
      setTimeout(() => reject(signal.reason as Error), grace).unref();
    };
    signal.addEventListener("abort", onAbort, { once: true });
  });
  try {
    return await Promise.race([work, aborted]);
  } finally {
    if (onAbort) signal.removeEventListener("abort", onAbort);
    void work.catch(() => undefined);
  }
}
