import type { ArtifactRef, EventDraft, ResolvedTask } from "@station-coding/protocol";
import { artifactKey, inputKey, patchKey, snapshotKey, validateFileName } from "@station-coding/protocol";
import type { Logger } from "pino";
import type { RunnerDeps } from "./runner-deps.js";
import { exclusively } from "./runner-deps.js";
import type { WorkspaceChanges } from "./workspace/changes.js";
import type { PreparedWorkspace } from "./workspace/workspace.js";
import { ArtifactError } from "./workspace/workspace-errors.js";

/**
 * How long collecting a finished task's changes waits for another task's command in the same
 * workspace (the lease is kept alive meanwhile); past it the result carries no changes.
 */
const COLLECT_MAX_WAIT_MS = 10_000;

/**
 * A task's objects in the namespace's object store: its staged inputs copied into the workspace,
 * and what it leaves behind: the patch of its changes, a snapshot on request, and artifacts the
 * driver or an oversized event or result stores.
 */
export class TaskArtifacts {
  constructor(
    private readonly d: Pick<
      RunnerDeps,
      "artifacts" | "names" | "workspaces" | "redactor" | "driver" | "options"
    >,
  ) {}

  /** Stores `data` as the task's artifact `name` (a plain file name) and returns its reference. */
  async store(taskID: string, name: string, data: Uint8Array, kind: string): Promise<ArtifactRef> {
    return this.put(artifactKey(taskID, validateFileName("artifact name", name)), data, kind);
  }

  /** Copies the task's staged input files from the object store into the workspace. */
  async stageInputs(task: ResolvedTask, workspace: PreparedWorkspace): Promise<void> {
    const files: { name: string; data: Uint8Array }[] = [];
    for (const name of task.inputs ?? []) {
      const key = inputKey(task.taskID, name);
      const data = await this.d.artifacts.getBlob(key);
      if (!data) {
        throw new ArtifactError(
          `inputs ${JSON.stringify(name)}: not found in ${this.d.names.objectStore} at ${key}; upload it before publishing the task`,
        );
      }
      files.push({ name, data });
    }
    await this.d.workspaces.stageInputs(workspace, files);
  }

  /** Changed files, the patch and (on request) a snapshot, stored as artifacts. Never fails the task. */
  async collectOutputs(
    task: ResolvedTask,
    workspace: PreparedWorkspace | undefined,
    emit: (event: EventDraft) => void,
    log: Logger,
  ): Promise<{ changes: WorkspaceChanges | undefined; artifacts: ArtifactRef[] }> {
    const artifacts: ArtifactRef[] = [];
    if (!workspace || task.op === "close") return { changes: undefined, artifacts };
    let changes: WorkspaceChanges | undefined;
    try {
      // The task's own calls are over; another task's in the same workspace may still run. The
      // lease is still renewed here, but the wait is bounded; past it the result has no changes.
      const collected = await exclusively(
        this.d.driver,
        workspace.path,
        async () => ({
          changes: await this.d.workspaces.collectChanges(workspace),
          snapshot: task.snapshot ? await this.d.workspaces.snapshot(workspace) : undefined,
        }),
        { maxWait: COLLECT_MAX_WAIT_MS },
      );
      changes = collected.changes;
      if (changes.patch) {
        // A secret the agent wrote into a file must not reach the object store (tokens are ASCII, so
        // a latin1 round trip keeps every other byte as it was).
        const patch = Buffer.from(
          this.d.redactor.redact(Buffer.from(changes.patch).toString("latin1")),
          "latin1",
        );
        const ref = await this.put(patchKey(task.taskID), patch, "patch");
        artifacts.push(ref);
        emit({ type: "artifact", artifact: ref, content: `${changes.files.length} files changed` });
      }
      if (collected.snapshot) {
        const key = snapshotKey(task.session.name, new Date().toISOString().replace(/[:.]/g, "-"));
        const ref = await this.put(key, collected.snapshot, "snapshot");
        artifacts.push(ref);
        emit({ type: "artifact", artifact: ref });
      }
    } catch (err) {
      log.warn({ err }, "could not collect the workspace's changes");
    }
    return { changes, artifacts };
  }

  private async put(key: string, data: Uint8Array, kind: string): Promise<ArtifactRef> {
    const info = await this.d.artifacts.putBlob({ name: key }, data);
    return { bucket: this.d.names.objectStore, key, kind, size: info.size, digest: info.digest };
  }
}
