import { lstat, mkdir, mkdtemp, readFile, readdir, realpath, rename, rm, writeFile } from "node:fs/promises";
import { randomUUID } from "node:crypto";
import { tmpdir } from "node:os";
import { isAbsolute, join, relative, sep } from "node:path";
import type {
  CleanupPolicy,
  CommitInfo,
  EventDraft,
  GitSpec,
  ResolvedTask,
  TaskStatus,
  WorkspaceScope,
} from "@station-coding/protocol";
import { validateName } from "@station-coding/protocol";
import type { Logger } from "pino";
import type { WorkspaceChanges } from "./changes.js";
import { collectChanges } from "./changes.js";
import type { GitRunnerOptions, RepoSummary } from "../git/git.js";
import { Git, RepoState } from "../git/git.js";
import type { GitCredentialOptions, SecretLookup } from "../git/git-credentials.js";
import { GitCredentials } from "../git/git-credentials.js";
import type { CommitOptions, GitAuthor, PushInfo, PushOptions } from "../git/git-publish.js";
import { commitChanges, pushBranch } from "../git/git-publish.js";
import type { SyncState } from "../git/git-sync.js";
import { cloneRepository, sameRepositoryUrl, updateRepository } from "../git/git-sync.js";
import type { InputFile } from "./input-files.js";
import { stageInputs } from "./input-files.js";
import type { SecretRedactor } from "../shared/redact.js";
import { snapshotWorkspace } from "./snapshot.js";
import type { UrlPolicyOptions } from "../git/url-policy.js";
import { checkGitUrl, checkRefName, checkSparsePath } from "../git/url-policy.js";
import { WorkspaceError } from "./workspace-errors.js";

export { WorkspaceError } from "./workspace-errors.js";

/** Git settings of a worker: URL policy, credentials, author and time limits. */
export interface WorkspaceGitOptions
  extends
    UrlPolicyOptions,
    Pick<GitCredentialOptions, "tokenEnv" | "tokenEnvByOrg" | "username">,
    Pick<
      GitRunnerOptions,
      "binary" | "timeout" | "cloneTimeout" | "pushTimeout" | "sshKeyFile" | "askpassDir" | "env"
    > {
  /** Commit author name. @default "station-coding" */
  userName?: string;
  /** Commit author email. @default "station-coding@localhost" */
  userEmail?: string;
}

/** Options of a {@link WorkspaceManager}. */
export interface WorkspaceManagerOptions {
  /** Root of the workspaces. */
  baseDir: string;
  /** When workspaces are deleted unless a task says otherwise. @default "on_session_end" */
  cleanupPolicy?: CleanupPolicy;
  git?: WorkspaceGitOptions;
  /** Reads `workspace.git.tokenFromKV` keys from the org's secrets bucket. */
  getSecret?: SecretLookup;
  /** Name of the secrets bucket of an org, for messages naming a missing key. */
  secretsBucket?: (org: string | undefined) => string;
  /** Every token used is registered here, so it is scrubbed wherever it might be echoed. */
  redactor?: SecretRedactor;
  logger?: Logger;
  /**
   * Give a new workspace that has no repository one with an empty first commit (copied from a
   * template), so that its changes can always be collected as a patch. @default true
   */
  initRepositories?: boolean;
  /** Largest total size of staged inputs. @default 64 MiB */
  maxInputBytes?: number;
  /** Largest patch returned by {@link WorkspaceManager.collectChanges}. @default 32 MiB */
  maxPatchBytes?: number;
  /** Largest snapshot archive. @default 256 MiB */
  maxSnapshotBytes?: number;
  /** Clock, for tests of {@link WorkspaceManager.sweep}. @default Date.now */
  now?: () => number;
}

/** A prepared workspace directory. */
export interface PreparedWorkspace {
  name: string;
  /** Absolute real path. */
  path: string;
  created: boolean;
  org?: string;
  scope: WorkspaceScope;
  /** HEAD when the task started: the base of its patch. Undefined when the workspace has no repository. */
  startCommit?: string;
  /** Checked-out branch, undefined on a detached HEAD. */
  branch?: string;
  /** The repository the workspace was cloned from. */
  gitUrl?: string;
}

/** Where a commit or push reports to: the task's event sink, abort signal and logger. */
export interface GitContext {
  emit?: (e: EventDraft) => void;
  signal?: AbortSignal;
  logger?: Logger;
}

/** What {@link WorkspaceManager.finish} did. */
export interface FinishOutcome {
  /** Paths deleted (the workspace, and for a closed workflow every workspace of that workflow). */
  deleted: string[];
  /** Why the workspace was kept or deleted. */
  reason: string;
}

/** A repository with one empty commit on `main`, held in memory (see WorkspaceManager.fromTemplate). */
interface TemplateRepository {
  head: string;
  /** Directories under `.git`, relative. */
  dirs: string[];
  /** Files under `.git`, relative, with their content and permission bits. */
  files: { path: string; data: Buffer; mode: number }[];
}

/** The record kept for each workspace, outside it, in `<base>/.station-meta/[<org>/]<name>.json`. */
interface WorkspaceRecord {
  version: 1;
  name: string;
  org?: string;
  scope: WorkspaceScope;
  scopeID?: string;
  cleanup?: CleanupPolicy;
  created: string;
  lastUsed: string;
  git?: { url: string; branch?: string; tokenFromKV?: string };
}

const META_DIR = ".station-meta";
/** Where deleted workspaces go before they are removed (a name no workspace can have). */
const TRASH_DIR = ".station-trash";

/** Whether `child` is `base` or inside it (both absolute, normalized). */
export function isInside(base: string, child: string): boolean {
  const rel = relative(base, child);
  return rel === "" || (!rel.startsWith(`..${sep}`) && rel !== ".." && !isAbsolute(rel));
}

/** Where workspaces live unless configured: `$TMPDIR/station-coding/workspaces`. */
export function defaultWorkspaceDir(): string {
  return join(tmpdir(), "station-coding", "workspaces");
}

/**
 * Creates, syncs, reuses and deletes workspace directories under a base directory: `<base>/<name>`,
 * or `<base>/<org>/<name>` for tenants.
 *
 * Names are validated, and every directory on the way is checked so that the real path (after
 * symbolic links) stays inside the base: nothing outside it is created, written or deleted.
 * A workspace with `workspace.git` is cloned (then fast-forwarded on reuse); one without gets a
 * repository with an empty first commit (a copy of a template made once) so its changes can always
 * be collected.
 * A small record per workspace (scope, cleanup policy, clone URL, last use) lives outside the
 * workspace in `<base>/.station-meta/`, so it never shows up as a change.
 */
export class WorkspaceManager {
  /** The git runner (shared by every workspace). */
  readonly git: Git;
  private readonly options: WorkspaceManagerOptions;
  private readonly credentials: GitCredentials;
  private readonly active = new Map<string, number>();
  private readonly locks = new Map<string, Promise<unknown>>();
  /** The repository new workspaces are written from, made at start or at the first one (see fromTemplate). */
  private template: Promise<TemplateRepository> | undefined;
  /** The real path of the base directory, once found (see realBase). */
  private base: Promise<string> | undefined;
  /** Deleted workspaces still being removed from the trash directory (see remove). */
  private readonly removals = new Set<Promise<void>>();

  constructor(options: string | WorkspaceManagerOptions) {
    this.options = typeof options === "string" ? { baseDir: options } : options;
    const g = this.options.git ?? {};
    const stripEnv = [g.tokenEnv, ...Object.values(g.tokenEnvByOrg ?? {})].filter(
      (v): v is string => v !== undefined,
    );
    this.git = new Git({
      ...(g.binary !== undefined ? { binary: g.binary } : {}),
      ...(g.allowLocalRepos !== undefined ? { allowLocalRepos: g.allowLocalRepos } : {}),
      ...(g.allowHttp !== undefined ? { allowHttp: g.allowHttp } : {}),
      ...(g.timeout !== undefined ? { timeout: g.timeout } : {}),
      ...(g.cloneTimeout !== undefined ? { cloneTimeout: g.cloneTimeout } : {}),
      ...(g.pushTimeout !== undefined ? { pushTimeout: g.pushTimeout } : {}),
      ...(g.sshKeyFile !== undefined ? { sshKeyFile: g.sshKeyFile } : {}),
      ...(g.askpassDir !== undefined ? { askpassDir: g.askpassDir } : {}),
      ...(g.env !== undefined ? { env: g.env } : {}),
      ...(this.options.logger ? { logger: this.options.logger } : {}),
      ...(this.options.redactor ? { redactor: this.options.redactor } : {}),
      stripEnv,
    });
    this.credentials = new GitCredentials({
      ...(g.tokenEnv !== undefined ? { tokenEnv: g.tokenEnv } : {}),
      ...(g.tokenEnvByOrg !== undefined ? { tokenEnvByOrg: g.tokenEnvByOrg } : {}),
      ...(g.username !== undefined ? { username: g.username } : {}),
      ...(this.options.getSecret ? { getSecret: this.options.getSecret } : {}),
      ...(this.options.secretsBucket ? { secretsBucket: this.options.secretsBucket } : {}),
      ...(this.options.redactor ? { redactor: this.options.redactor } : {}),
    });
  }

  /** The workspace path of a task (not created, not resolved). */
  pathFor(name: string, org: string | undefined): string {
    validateName("workspace.name", name);
    if (org !== undefined) validateName("org", org);
    const base = this.options.baseDir;
    return org === undefined ? join(base, name) : join(base, org, name);
  }

  /**
   * Registers the task's repository token with the redactor ahead of {@link prepare}, which reports
   * any failure to find it: what is written before (the task index's running record, with its
   * prompt excerpt) is redacted with it too. Never throws.
   */
  async learnToken(task: ResolvedTask, org: string | undefined): Promise<void> {
    await this.credentials.resolve(task.workspace.git, org).catch(() => undefined);
  }

  /**
   * Creates or reuses the task's workspace, brings its repository to `workspace.git` (clone, or
   * checkout and `pull --ff-only` on reuse; only for `code` and `open` tasks) and emits
   * `git_clone` / `git_checkout` / `git_pull`, then `workspace_created` or `workspace_reused`.
   *
   * A new workspace whose preparation fails is removed again, so a retry starts clean.
   *
   * @throws ValidationError (INVALID_NAME) for a bad name, WorkspaceError for a path outside the base,
   *   GitRefusedError for a URL or ref the policy refuses, GitError for a failed git call.
   */
  async prepare(
    task: ResolvedTask,
    org: string | undefined,
    emit: (e: EventDraft) => void,
    signal?: AbortSignal,
  ): Promise<PreparedWorkspace> {
    const name = task.workspace.name;
    this.pathFor(name, org);
    const { scope, scopeID } = task.workspace;
    if (scope === "workflow" && scopeID === undefined) {
      throw new WorkspaceError('workspace.scopeID: is required when workspace.scope is "workflow"');
    }
    const spec = task.workspace.git;
    if (spec) this.checkSpec(spec, org);
    const syncGit = spec !== undefined && (task.op === "code" || task.op === "open");
    const log = this.options.logger?.child({ taskID: task.taskID, workspace: name, ...(org ? { org } : {}) });

    const base = await this.realBase();
    const wanted = org === undefined ? join(base, name) : join(base, org, name);
    return this.locked(wanted, async () => {
      if ((task.op === "commit" || task.op === "push") && !(await exists(wanted))) {
        throw new WorkspaceError(
          `workspace.name ${JSON.stringify(name)}: no such workspace on this worker; nothing to ${task.op}`,
        );
      }
      const [{ path, created }, record] = await Promise.all([
        this.ensureDir(base, org, name).catch((err: unknown) => {
          this.base = undefined;
          throw err;
        }),
        this.readRecord(base, org, name),
      ]);
      if (scope === "workflow" && record?.scopeID !== undefined && record.scopeID !== scopeID) {
        throw new WorkspaceError(
          `workspace.name ${JSON.stringify(name)}: belongs to workflow ${JSON.stringify(record.scopeID)}, ` +
            `not ${JSON.stringify(scopeID)}; use another workspace name`,
        );
      }
      this.active.set(path, (this.active.get(path) ?? 0) + 1);
      try {
        const repo = new RepoState(this.git, path, signal, log);
        let state: SyncState = {};
        let summary: RepoSummary | undefined;
        let recorded = false;
        const now = new Date(this.now()).toISOString();
        const gitUrl = spec?.url ?? record?.git?.url;
        const recordOf = (state: SyncState): WorkspaceRecord => ({
          version: 1,
          name,
          ...(org !== undefined ? { org } : {}),
          // A workspace once used by a workflow stays a workflow workspace until that workflow closes.
          scope: scope === "workflow" ? scope : (record?.scope ?? scope),
          ...((record?.scopeID ?? scopeID) !== undefined ? { scopeID: record?.scopeID ?? scopeID } : {}),
          ...((task.workspace.cleanup ?? record?.cleanup) !== undefined
            ? { cleanup: task.workspace.cleanup ?? record?.cleanup }
            : {}),
          created: record?.created ?? now,
          lastUsed: now,
          ...(gitUrl !== undefined
            ? {
                git: {
                  url: gitUrl,
                  ...((spec?.branch ?? state.branch) !== undefined
                    ? { branch: spec?.branch ?? state.branch }
                    : {}),
                  ...((spec?.tokenFromKV ?? record?.git?.tokenFromKV) !== undefined
                    ? { tokenFromKV: spec?.tokenFromKV ?? record?.git?.tokenFromKV }
                    : {}),
                },
              }
            : {}),
        });
        if (syncGit) {
          let isRepo = await repo.isRepo();
          const token = await this.credentials.resolve(spec, org);
          const ctx = {
            git: this.git,
            spec,
            emit,
            ...(token ? { token } : {}),
            ...(signal ? { signal } : {}),
            ...(log ? { logger: log } : {}),
          };
          if (!isRepo) {
            if ((await readdir(path)).length > 0) {
              throw new WorkspaceError(
                `workspace.name ${JSON.stringify(name)}: exists and is not a clone of ${spec.url}; ` +
                  "use another workspace name or close this one",
              );
            }
            state = await cloneRepository(path, ctx);
            isRepo = true;
          } else {
            const origin = await repo.configuredRemoteUrl("origin");
            if (origin === undefined || !sameRepositoryUrl(origin, spec.url)) {
              throw new WorkspaceError(
                `workspace.name ${JSON.stringify(name)}: ${origin === undefined ? "has a repository without an origin remote" : `is a clone of ${origin}`}, ` +
                  `not of ${spec.url}; use another workspace name or close this one`,
              );
            }
            state = await updateRepository(path, ctx);
          }
          summary = isRepo ? await repo.summary() : undefined;
        } else if (created) {
          // A new, empty directory: a copy of the template repository, in the state it was made in.
          if (this.options.initRepositories !== false && task.op !== "close") {
            // The record does not depend on the repository: both are written at once.
            summary = await bothSettled(
              this.fromTemplate(path, signal, log),
              this.writeRecord(base, recordOf({})),
            );
            recorded = true;
          }
        } else {
          summary = (await this.untouchedTemplate(path)) ?? (await repo.pinned())?.summary;
        }
        const startCommit = summary?.head;
        const branch = summary?.branch;
        const dirty = summary?.dirty;
        if (!recorded) await this.writeRecord(base, recordOf(state));
        emit({
          type: created ? "workspace_created" : "workspace_reused",
          content: path,
          workspace: {
            name,
            path,
            scope,
            ...(dirty !== undefined ? { dirty } : {}),
            ...(startCommit !== undefined ? { lastCommit: startCommit } : {}),
          },
        });
        log?.info(
          { path, created, commit: startCommit, branch },
          created ? "workspace created" : "workspace reused",
        );
        return {
          name,
          path,
          created,
          ...(org !== undefined ? { org } : {}),
          scope,
          ...(startCommit !== undefined ? { startCommit } : {}),
          ...(branch !== undefined ? { branch } : {}),
          ...(gitUrl !== undefined ? { gitUrl } : {}),
        };
      } catch (err) {
        this.unmark(path);
        if (created) {
          await this.remove(base, org, name).catch((rmErr: unknown) =>
            log?.warn({ err: rmErr }, "could not remove the workspace after a failed preparation"),
          );
        }
        throw err;
      }
    });
  }

  /**
   * Applies the cleanup policy after a task: `close` deletes the workspace (and, for a workflow, every
   * workspace of that workflow) unless the policy is `manual`; `on_success` deletes an `agent`-scope
   * workspace after a completed task; `workflow` workspaces are otherwise kept until their `close`.
   * A workspace another task is still using is never deleted.
   */
  async finish(task: ResolvedTask, workspace: PreparedWorkspace, status: TaskStatus): Promise<FinishOutcome> {
    const base = await this.realBase();
    const org = workspace.org;
    const log = this.options.logger?.child({ taskID: task.taskID, workspace: workspace.name });
    return this.locked(workspace.path, async () => {
      this.unmark(workspace.path);
      const record = await this.readRecord(base, org, workspace.name);
      const policy = task.workspace.cleanup ?? record?.cleanup ?? this.defaultPolicy;
      const scope = record?.scope ?? workspace.scope;
      let remove: string | undefined;
      if (task.op === "close") {
        if (policy !== "manual") remove = `closed (${scope} scope, cleanup ${policy})`;
      } else if (policy === "on_success" && scope === "agent" && status === "completed") {
        remove = "task completed (cleanup on_success)";
      }
      const deleted: string[] = [];
      if (remove === undefined) {
        if (record) await this.writeRecord(base, { ...record, lastUsed: new Date(this.now()).toISOString() });
        return { deleted, reason: `kept (${scope} scope, cleanup ${policy}, task ${status})` };
      }
      if ((this.active.get(workspace.path) ?? 0) > 0) {
        return { deleted, reason: "kept: another task is using the workspace" };
      }
      if (await this.remove(base, org, workspace.name)) deleted.push(workspace.path);
      if (task.op === "close" && scope === "workflow" && (record?.scopeID ?? task.workspace.scopeID)) {
        const scopeID = record?.scopeID ?? task.workspace.scopeID;
        for (const other of await this.records(base)) {
          if (other.scopeID !== scopeID || other.org !== org || other.name === workspace.name) continue;
          if ((other.cleanup ?? this.defaultPolicy) === "manual") continue;
          const path = other.org === undefined ? join(base, other.name) : join(base, other.org, other.name);
          if ((this.active.get(path) ?? 0) > 0) continue;
          if (await this.remove(base, other.org, other.name)) deleted.push(path);
        }
      }
      log?.info({ deleted }, `workspace deleted: ${remove}`);
      return { deleted, reason: remove };
    });
  }

  /**
   * Marks the workspace as no longer used by the task without applying any cleanup policy: for a
   * task that will be retried or was handed back (it runs again, here or elsewhere).
   */
  async release(workspace: PreparedWorkspace): Promise<void> {
    const base = await this.realBase();
    await this.locked(workspace.path, async () => {
      this.unmark(workspace.path);
      const record = await this.readRecord(base, workspace.org, workspace.name);
      if (record) await this.writeRecord(base, { ...record, lastUsed: new Date(this.now()).toISOString() });
    });
  }

  /**
   * Deletes workspaces not used for longer than `maxAgeMs` (abandoned ones), except `manual` ones and
   * those in use. Only workspaces with a record are considered.
   *
   * @returns the paths deleted.
   */
  async sweep(maxAgeMs: number): Promise<string[]> {
    const base = await this.realBase();
    const cutoff = this.now() - maxAgeMs;
    const deleted: string[] = [];
    for (const record of await this.records(base)) {
      const last = Date.parse(record.lastUsed);
      if (!(last < cutoff) || (record.cleanup ?? this.defaultPolicy) === "manual") continue;
      const path = record.org === undefined ? join(base, record.name) : join(base, record.org, record.name);
      if ((this.active.get(path) ?? 0) > 0) continue;
      const removed = await this.locked(path, () => this.remove(base, record.org, record.name));
      if (removed) deleted.push(path);
    }
    if (deleted.length > 0) this.options.logger?.info({ deleted, maxAgeMs }, "swept abandoned workspaces");
    return deleted;
  }

  /** Commits the workspace as the configured author and emits `git_commit`. */
  async commit(
    workspace: PreparedWorkspace,
    options: CommitOptions,
    context: GitContext = {},
  ): Promise<CommitInfo> {
    return commitChanges(
      workspace.path,
      { ...options, author: options.author ?? this.author },
      {
        git: this.git,
        ...context,
      },
    );
  }

  /**
   * Pushes the workspace and emits `git_push`. The token comes from `git` (the task's spec), else
   * from the `tokenFromKV` key recorded at clone time, else from the worker's configuration.
   */
  async push(
    workspace: PreparedWorkspace,
    options: PushOptions & { git?: GitSpec },
    context: GitContext = {},
  ): Promise<PushInfo> {
    const base = await this.realBase();
    const record = await this.readRecord(base, workspace.org, workspace.name);
    const spec =
      options.git ?? (record?.git?.tokenFromKV ? { tokenFromKV: record.git.tokenFromKV } : undefined);
    const token = await this.credentials.resolve(spec, workspace.org);
    const clonedFrom = record?.git?.url ?? workspace.gitUrl;
    return pushBranch(workspace.path, options, {
      git: this.git,
      policy: this.options.git ?? {},
      ...(workspace.org !== undefined ? { org: workspace.org } : {}),
      ...(token ? { token } : {}),
      ...(clonedFrom !== undefined ? { clonedFrom } : {}),
      ...context,
    });
  }

  /** Files, commits and a binary patch since `startCommit` (default: the workspace's start). */
  async collectChanges(
    workspace: PreparedWorkspace,
    startCommit: string | undefined = workspace.startCommit,
    signal?: AbortSignal,
  ): Promise<WorkspaceChanges> {
    if (startCommit !== undefined) {
      const untouched = await this.untouchedTemplate(workspace.path);
      // What `git status` would find: HEAD still at the start, nothing to diff.
      if (untouched?.head === startCommit) {
        return { files: [], commits: [], git: { branch: "main", commit: startCommit, dirty: false } };
      }
    }
    return collectChanges(workspace.path, startCommit, {
      git: this.git,
      ...(signal ? { signal } : {}),
      ...(this.options.maxPatchBytes !== undefined ? { maxPatchBytes: this.options.maxPatchBytes } : {}),
    });
  }

  /** A `.tar.gz` of the workspace without `.git`. */
  async snapshot(workspace: PreparedWorkspace, signal?: AbortSignal): Promise<Uint8Array> {
    return snapshotWorkspace(workspace.path, {
      ...(signal ? { signal } : {}),
      ...(this.options.maxSnapshotBytes !== undefined ? { maxBytes: this.options.maxSnapshotBytes } : {}),
    });
  }

  /** Writes staged input files into the workspace (validated names, size limit, no symlink escape). */
  async stageInputs(workspace: PreparedWorkspace, files: InputFile[]): Promise<string[]> {
    return stageInputs(workspace.path, files, {
      ...(this.options.maxInputBytes !== undefined ? { maxBytes: this.options.maxInputBytes } : {}),
    });
  }

  /**
   * Makes the template repository new workspaces are copied from, so that the first task does not
   * wait for it. Rejects when git cannot make it (the first new workspace tries again).
   */
  async warmUp(): Promise<void> {
    this.emptyTrash();
    this.template ??= this.makeTemplate(this.options.logger);
    await this.template.catch((err: unknown) => {
      this.template = undefined;
      throw err;
    });
  }

  /** Releases the git helper files (the askpass script). */
  async close(): Promise<void> {
    await Promise.all(this.removals);
    await this.git.dispose();
  }

  private get defaultPolicy(): CleanupPolicy {
    return this.options.cleanupPolicy ?? "on_session_end";
  }

  private get author(): GitAuthor {
    return {
      name: this.options.git?.userName ?? "station-coding",
      email: this.options.git?.userEmail ?? "station-coding@localhost",
    };
  }

  private now(): number {
    return (this.options.now ?? Date.now)();
  }

  private checkSpec(spec: GitSpec, org: string | undefined): void {
    checkGitUrl(spec.url, this.options.git ?? {}, org);
    if (spec.branch !== undefined) checkRefName("workspace.git.branch", spec.branch);
    if (spec.ref !== undefined) checkRefName("workspace.git.ref", spec.ref);
    for (const [i, path] of (spec.sparse ?? []).entries())
      checkSparsePath(`workspace.git.sparse[${i}]`, path);
  }

  /**
   * Makes `path` (a new, empty directory) a repository with an empty first commit on `main`, by
   * writing the worker's template repository into it: no git process per workspace, a handful of
   * small files. Every new workspace of this worker starts at the same commit.
   */
  private async fromTemplate(path: string, signal?: AbortSignal, logger?: Logger): Promise<RepoSummary> {
    // Made without the task's signal: other tasks may wait for it too.
    this.template ??= this.makeTemplate(logger);
    signal?.throwIfAborted();
    const template = await this.template.catch((err: unknown) => {
      // A failure must not stick: the next workspace tries again.
      this.template = undefined;
      throw err;
    });
    const gitDir = join(path, ".git");
    await mkdir(gitDir);
    await Promise.all(template.dirs.map((dir) => mkdir(join(gitDir, dir), { recursive: true })));
    await Promise.all(
      template.files.map((f) => writeFile(join(gitDir, f.path), f.data, { mode: f.mode, flag: "wx" })),
    );
    return { head: template.head, branch: "main", dirty: false };
  }

  /**
   * The state of the repository at `path` when it is still exactly what {@link fromTemplate} wrote:
   * the workspace holds nothing but `.git`, and `.git` holds the template's directories and files,
   * byte for byte, and nothing else (no index, no other ref, no changed config). `git status` would
   * then say HEAD is the template's commit on `main` and nothing differs, so it is not run: a no-op
   * task in such a workspace starts no git process. Anything else (a file, an index, a commit, a
   * link, a read error) is undefined, and the caller asks git. A handful of small reads, no fork.
   */
  private async untouchedTemplate(path: string): Promise<RepoSummary | undefined> {
    if (!this.template) return undefined;
    const template = await this.template.catch(() => undefined);
    if (!template) return undefined;
    const gitDir = join(path, ".git");
    try {
      const [top, inside] = await Promise.all([
        readdir(path, { withFileTypes: true }),
        readdir(gitDir, { recursive: true, withFileTypes: true }),
      ]);
      if (top.length !== 1 || top[0]?.name !== ".git" || !top[0].isDirectory()) return undefined;
      if (inside.length !== template.dirs.length + template.files.length) return undefined;
      const dirs = new Set(template.dirs);
      const files = new Map(template.files.map((f) => [f.path, f.data]));
      for (const entry of inside) {
        const rel = relative(gitDir, join(entry.parentPath, entry.name));
        if (entry.isDirectory() ? !dirs.has(rel) : !entry.isFile() || !files.has(rel)) return undefined;
      }
      const same = await Promise.all(
        template.files.map(async (f) => (await readFile(join(gitDir, f.path))).equals(f.data)),
      );
      return same.every(Boolean) ? { head: template.head, branch: "main", dirty: false } : undefined;
    } catch {
      return undefined;
    }
  }

  /**
   * `git init` and an empty commit in a temporary directory, read into memory: what a repository
   * needs (HEAD, config, refs, the commit and tree objects), without sample hooks, logs or index.
   */
  private async makeTemplate(logger?: Logger): Promise<TemplateRepository> {
    const dir = await mkdtemp(join(tmpdir(), "station-workspace-template-"));
    try {
      const c = { cwd: dir, ...(logger ? { logger } : {}) };
      await this.git.run(["init", "--quiet", "--initial-branch=main"], c);
      const { name, email } = this.author;
      await this.git.run(
        [
          ...["-c", `user.name=${name}`, "-c", `user.email=${email}`],
          ...["commit", "--quiet", "--allow-empty", "--no-verify", "-m", "station-coding: new workspace"],
        ],
        c,
      );
      const head = await new RepoState(this.git, dir, undefined, logger).head();
      if (head === undefined) throw new WorkspaceError("the workspace template repository has no commit");
      const gitDir = join(dir, ".git");
      for (const extra of ["hooks", "info", "logs", "description", "index", "COMMIT_EDITMSG"]) {
        await rm(join(gitDir, extra), { recursive: true, force: true });
      }
      const template: TemplateRepository = { head, dirs: [], files: [] };
      for (const entry of await readdir(gitDir, { recursive: true, withFileTypes: true })) {
        const path = relative(gitDir, join(entry.parentPath, entry.name));
        if (entry.isDirectory()) template.dirs.push(path);
        else if (entry.isFile()) {
          const full = join(gitDir, path);
          template.files.push({ path, data: await readFile(full), mode: (await lstat(full)).mode & 0o777 });
        }
      }
      return template;
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  }

  private unmark(path: string): void {
    const count = (this.active.get(path) ?? 0) - 1;
    if (count > 0) this.active.set(path, count);
    else this.active.delete(path);
  }

  /** Runs `work` after every earlier locked work on `key` has settled. */
  private async locked<T>(key: string, work: () => Promise<T>): Promise<T> {
    const previous = this.locks.get(key) ?? Promise.resolve();
    const next = previous.then(work, work);
    const tail = next.catch(() => undefined);
    this.locks.set(key, tail);
    try {
      return await next;
    } finally {
      if (this.locks.get(key) === tail) this.locks.delete(key);
    }
  }

  /**
   * The base directory, created if missing, as a real path: found once (two file system calls on
   * every prepare and finish otherwise). A workspace that cannot be made forgets it, so a base
   * removed under a running worker is made again by the next task.
   */
  private realBase(): Promise<string> {
    this.base ??= (async () => {
      await mkdir(this.options.baseDir, { recursive: true });
      return realpath(this.options.baseDir);
    })();
    return this.base.catch((err: unknown) => {
      this.base = undefined;
      throw err;
    });
  }

  /**
   * Walks `<base>/[<org>/]<name>`, creating missing directories one level at a time and refusing
   * any existing entry whose real path leaves the base, before anything is created beneath it.
   */
  private async ensureDir(
    base: string,
    org: string | undefined,
    name: string,
  ): Promise<{ path: string; created: boolean }> {
    const segments = org === undefined ? [name] : [org, name];
    let current = base;
    let created = false;
    for (const [i, segment] of segments.entries()) {
      const field = i === segments.length - 1 ? "workspace.name" : "org";
      const value = i === segments.length - 1 ? name : (org ?? "");
      const next = join(current, segment);
      // mkdir first: it creates a real directory inside `current` (never following a link) or
      // fails with EEXIST; only an existing entry needs the checks below.
      try {
        await mkdir(next, { mode: 0o755 });
        if (i === segments.length - 1) created = true;
        current = next;
        continue;
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code !== "EEXIST") {
          throw new WorkspaceError(`${field} ${JSON.stringify(value)}: could not create ${next}`, {
            cause: err,
          });
        }
      }
      const st = await lstat(next);
      const real = await realpath(next);
      if (!isInside(base, real) || real === base) {
        throw new WorkspaceError(
          `${field} ${JSON.stringify(value)}: ${next} resolves to ${real}, outside the workspace root ${base}; refusing to use it`,
        );
      }
      const target = st.isSymbolicLink() ? await lstat(real) : st;
      if (!target.isDirectory()) {
        throw new WorkspaceError(`${field} ${JSON.stringify(value)}: ${next} exists and is not a directory`);
      }
      current = real;
    }
    return { path: current, created };
  }

  /** Deletes a workspace directory (after re-checking it is a real directory inside the base) and its record. */
  private async remove(base: string, org: string | undefined, name: string): Promise<boolean> {
    const path = org === undefined ? join(base, name) : join(base, org, name);
    const [, st] = await Promise.all([
      rm(this.recordPath(base, org, name), { force: true }),
      lstat(path).catch(() => undefined),
    ]);
    if (!st) return false;
    if (st.isSymbolicLink()) {
      // Never follow it: drop the link only.
      await rm(path, { force: true });
      return true;
    }
    const real = await realpath(path);
    if (!st.isDirectory() || !isInside(base, real) || real === base) {
      throw new WorkspaceError(
        `workspace.name ${JSON.stringify(name)}: ${path} is not a workspace directory; not deleted`,
      );
    }
    await this.discard(base, real);
    return true;
  }

  /** Removes, in the background, what workers that are gone left in the trash directory. */
  private emptyTrash(): void {
    const removal: Promise<void> = (async () => {
      const trash = join(await this.realBase(), TRASH_DIR);
      for (const entry of await readdir(trash).catch(() => [])) {
        const pid = Number(entry.split("-")[0]);
        if (pid === process.pid || (Number.isInteger(pid) && pid > 0 && processAlive(pid))) continue;
        await rm(join(trash, entry), { recursive: true, force: true, maxRetries: 3 });
      }
    })()
      .catch((err: unknown) => this.options.logger?.warn({ err }, "could not empty the workspace trash"))
      .finally(() => this.removals.delete(removal));
    this.removals.add(removal);
  }

  /**
   * Deletes a directory tree inside the base: renamed into `<base>/.station-trash/` at once (one
   * call: the workspace is gone from its path when this returns), then removed in the background,
   * which {@link close} waits for. Where it cannot be renamed, it is removed here and now.
   */
  private async discard(base: string, real: string): Promise<void> {
    const trash = join(base, TRASH_DIR);
    const target = join(trash, `${process.pid}-${randomUUID()}`);
    try {
      await rename(real, target).catch(async (err: unknown) => {
        if ((err as NodeJS.ErrnoException).code !== "ENOENT") throw err;
        await mkdir(trash, { recursive: true, mode: 0o700 });
        await rename(real, target);
      });
    } catch {
      await rm(real, { recursive: true, force: true, maxRetries: 3 });
      return;
    }
    const removal: Promise<void> = rm(target, { recursive: true, force: true, maxRetries: 3 })
      .catch((err: unknown) =>
        this.options.logger?.warn({ err, path: target }, "could not remove a deleted workspace"),
      )
      .finally(() => this.removals.delete(removal));
    this.removals.add(removal);
  }

  private recordPath(base: string, org: string | undefined, name: string): string {
    return org === undefined
      ? join(base, META_DIR, `${name}.json`)
      : join(base, META_DIR, org, `${name}.json`);
  }

  private async readRecord(
    base: string,
    org: string | undefined,
    name: string,
  ): Promise<WorkspaceRecord | undefined> {
    try {
      return parseRecord(await readFile(this.recordPath(base, org, name), "utf8"));
    } catch {
      return undefined;
    }
  }

  private async writeRecord(base: string, record: WorkspaceRecord): Promise<void> {
    const file = this.recordPath(base, record.org, record.name);
    const dir = join(file, "..");
    await mkdir(dir, { recursive: true, mode: 0o700 });
    const real = await realpath(dir);
    if (!isInside(base, real)) {
      throw new WorkspaceError(
        `workspace records: ${dir} resolves outside the workspace root; refusing to write`,
      );
    }
    const temp = `${file}.${process.pid}.tmp`;
    await writeFile(temp, `${JSON.stringify(record, null, 2)}\n`, { mode: 0o600 });
    await rename(temp, file);
  }

  /** Every readable record under the base. */
  private async records(base: string): Promise<WorkspaceRecord[]> {
    const root = join(base, META_DIR);
    const out: WorkspaceRecord[] = [];
    const entries = await readdir(root, { withFileTypes: true }).catch(() => []);
    for (const entry of entries) {
      if (entry.isFile() && entry.name.endsWith(".json")) {
        const record = await readFile(join(root, entry.name), "utf8").then(parseRecord, () => undefined);
        if (record && record.org === undefined) out.push(record);
      } else if (entry.isDirectory()) {
        const inner = await readdir(join(root, entry.name), { withFileTypes: true }).catch(() => []);
        for (const file of inner) {
          if (!file.isFile() || !file.name.endsWith(".json")) continue;
          const record = await readFile(join(root, entry.name, file.name), "utf8").then(
            parseRecord,
            () => undefined,
          );
          if (record && record.org === entry.name) out.push(record);
        }
      }
    }
    return out;
  }
}

/** Parses a record, validating the names it would turn into paths. */
function parseRecord(text: string): WorkspaceRecord | undefined {
  const value = JSON.parse(text) as Partial<WorkspaceRecord>;
  if (value.version !== 1 || typeof value.name !== "string" || typeof value.lastUsed !== "string")
    return undefined;
  try {
    validateName("workspace.name", value.name);
    if (value.org !== undefined) validateName("org", value.org);
  } catch {
    return undefined;
  }
  return value as WorkspaceRecord;
}

/** `first`'s value once both have settled; the first failure, if any, once both have. */
async function bothSettled<T>(first: Promise<T>, second: Promise<unknown>): Promise<T> {
  const [a, b] = await Promise.allSettled([first, second]);
  if (a.status === "rejected") throw a.reason;
  if (b.status === "rejected") throw b.reason;
  return a.value;
}

/** Whether a process with this id runs (on this host). */
function processAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === "EPERM";
  }
}

async function exists(path: string): Promise<boolean> {
  return lstat(path).then(
    () => true,
    () => false,
  );
}
