import type { ResolvedTask, SessionState, Versioned } from "@station-coding/protocol";
import type { Logger } from "pino";
import type { RunnerDeps } from "./runner-deps.js";
import type { OpenedSession } from "./shared/driver.js";
import type { WorkspaceChanges } from "./workspace/changes.js";
import type { PreparedWorkspace } from "./workspace/workspace.js";

/** What a run of a task leaves for its session's record. */
export interface SessionRun {
  task: ResolvedTask;
  workspace: PreparedWorkspace | undefined;
  session: OpenedSession | undefined;
  changes: WorkspaceChanges | undefined;
  /** Where the driver exported the agent session, for workers that have not seen it. */
  exportKey: string | undefined;
  /** The record as the run read it under the session lock (saves a read; compare-and-set still guards). */
  known?: { entry: Versioned<SessionState> | undefined } | undefined;
}

/**
 * Records the session after a run (compare-and-set on the sessions bucket): its agent session,
 * workspace, message count, export and git state. Returns the message count; a run without an
 * agent session records nothing and returns the stored count. A failure is logged, never thrown.
 */
export async function recordSession(
  d: Pick<RunnerDeps, "sessions" | "names" | "options">,
  { task, workspace, session, changes, exportKey, known }: SessionRun,
  log: Logger,
): Promise<number> {
  if (!workspace || !session || !session.opencodeID) {
    return (await d.sessions.get(task.session.name).catch(() => undefined))?.value.messageCount ?? 0;
  }
  try {
    const now = new Date().toISOString();
    const gitUrl = workspace.gitUrl ?? task.workspace.git?.url;
    const { value } = await d.sessions.update(
      task.session.name,
      (current) => {
        const same = current?.opencodeID === session.opencodeID;
        return {
          ...(current ?? {}),
          sessionName: task.session.name,
          opencodeID: session.opencodeID,
          workspaceName: workspace.name,
          workspacePath: workspace.path,
          created: current?.created ?? now,
          lastUsed: now,
          messageCount: (same ? current.messageCount : 0) + (task.op === "code" ? 1 : 0),
          ...(d.names.org !== undefined ? { org: d.names.org } : {}),
          scope: task.workspace.scope,
          ...(task.workspace.scopeID !== undefined ? { scopeID: task.workspace.scopeID } : {}),
          ...(exportKey !== undefined ? { exportKey } : {}),
          ...(gitUrl && changes?.git
            ? {
                git: {
                  url: stripCredentials(gitUrl),
                  branch: changes.git.branch,
                  lastCommit: changes.git.commit,
                },
              }
            : {}),
          workerID: d.options.workerID,
          lastTaskID: task.taskID,
        };
      },
      known,
    );
    return value.messageCount;
  } catch (err) {
    log.error({ err }, "could not record the session state");
    return 0;
  }
}

function stripCredentials(url: string): string {
  return url.replace(/^([a-z][a-z0-9+.-]*:\/\/)[^/@]*@/i, "$1");
}
