import { mkdir, realpath, stat } from "node:fs/promises";
import { isAbsolute, join, relative, sep } from "node:path";
import type { EventDraft, ResolvedTask } from "@station-coding/protocol";
import { ErrorCodes, StationError, validateName } from "@station-coding/protocol";

/** A prepared workspace directory. */
export interface PreparedWorkspace {
  name: string;
  /** Absolute real path. */
  path: string;
  created: boolean;
}

/** Thrown when a workspace cannot be prepared or would escape the base directory. */
export class WorkspaceError extends StationError {
  override name = "WorkspaceError";
  constructor(message: string, options: { cause?: unknown; retryable?: boolean } = {}) {
    super(ErrorCodes.WorkspaceError, message, options);
  }
}

/** Whether `child` is `base` or inside it (both absolute, normalized). */
export function isInside(base: string, child: string): boolean {
  const rel = relative(base, child);
  return rel === "" || (!rel.startsWith("..") && !isAbsolute(rel) && !rel.startsWith(`..${sep}`));
}

/**
 * Creates or reuses workspace directories under a base directory: `<base>/<name>`, or
 * `<base>/<org>/<name>` for tenants. Names are validated and the real path (after symlinks) must
 * stay inside the base.
 */
export class WorkspaceManager {
  constructor(private readonly baseDir: string) {}

  /** The workspace path of a task (not created). */
  pathFor(name: string, org: string | undefined): string {
    validateName("workspace.name", name);
    if (org !== undefined) validateName("org", org);
    return org === undefined ? join(this.baseDir, name) : join(this.baseDir, org, name);
  }

  /** Creates or reuses the task's workspace and emits `workspace_created` or `workspace_reused`. */
  async prepare(
    task: ResolvedTask,
    org: string | undefined,
    emit: (e: EventDraft) => void,
  ): Promise<PreparedWorkspace> {
    const name = task.workspace.name;
    const wanted = this.pathFor(name, org);
    await mkdir(this.baseDir, { recursive: true });
    const base = await realpath(this.baseDir);
    let created = false;
    try {
      await stat(wanted);
    } catch {
      await mkdir(wanted, { recursive: true });
      created = true;
    }
    const real = await realpath(wanted);
    if (!isInside(base, real) || real === base) {
      throw new WorkspaceError(`workspace.name ${JSON.stringify(name)}: resolves outside the workspace root`);
    }
    emit({
      type: created ? "workspace_created" : "workspace_reused",
      content: real,
      workspace: { name, path: real, scope: task.workspace.scope },
    });
    return { name, path: real, created };
  }
}
