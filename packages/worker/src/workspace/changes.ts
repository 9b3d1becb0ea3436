import { copyFile, mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { ChangedFile } from "@station-coding/protocol";
import type { Git, GitCall } from "../git/git.js";
import { RepoState } from "../git/git.js";
import { GitError } from "../git/git-errors.js";

/** Hash of git's empty tree: the starting point of a repository without commits. */
const EMPTY_TREE = "4b825dc642cb6eb9a060e54bf8d69288fbee4904";

/** What a task changed in a workspace, relative to where it started. */
export interface WorkspaceChanges {
  /** Files that differ from the starting commit (working tree, untracked files included). */
  files: ChangedFile[];
  /** Commits made since the starting commit, oldest first. */
  commits: { hash: string; subject: string }[];
  /**
   * `git diff --binary --full-index` from the starting commit to the working tree, untracked files
   * included; `git apply` on a clone at the starting commit reproduces the workspace. Undefined when
   * nothing changed, the workspace is not a git repository, or the patch is over the size limit.
   */
  patch?: Uint8Array;
  /** Set when the patch was left out because it was larger than `maxPatchBytes`. */
  patchOmitted?: string;
  /** The working tree's state; undefined when the workspace is not a git repository. */
  git?: { branch: string; commit: string; dirty: boolean };
}

/** Options of {@link collectChanges}. */
export interface CollectChangesOptions {
  git: Git;
  signal?: AbortSignal;
  /** Largest patch returned. @default 32 MiB */
  maxPatchBytes?: number;
}

/**
 * Collects a workspace's changes since `startCommit` without touching the user's index: the
 * working tree (ignored files excepted) is staged into a temporary index (`GIT_INDEX_FILE`), written
 * as a tree, and diffed against the start.
 */
export async function collectChanges(
  dir: string,
  startCommit: string | undefined,
  options: CollectChangesOptions,
): Promise<WorkspaceChanges> {
  const { git, signal } = options;
  // One `git status` for the state; git is pinned to `<dir>/.git` and `dir` from here on.
  const repo = await new RepoState(git, dir, signal).pinned();
  if (repo === undefined) return { files: [], commits: [] };
  const { gitDir } = repo;
  const c: GitCall = { cwd: dir, env: repo.env, ...(signal ? { signal } : {}) };
  // Nothing below touches the real index, HEAD or the working tree: this state holds throughout.
  const { head, branch, dirty } = repo.summary;
  const start = startCommit ?? head ?? EMPTY_TREE;
  // A clean tree at the start commit has nothing to diff: no further git process.
  if (!dirty && start === (head ?? EMPTY_TREE)) {
    return { files: [], commits: [], git: { branch: branch ?? "HEAD", commit: head ?? "", dirty } };
  }
  const tmp = await mkdtemp(join(tmpdir(), "station-index-"));
  try {
    const indexFile = join(tmp, "index");
    // Seeding from the real index keeps git's stat cache, so unchanged files are not re-hashed.
    await copyFile(join(gitDir, "index"), indexFile).catch(() => undefined);
    const withIndex: GitCall = { ...c, env: { ...repo.env, GIT_INDEX_FILE: indexFile } };
    await git.run(["add", "--all", "--", "."], { ...withIndex, what: "git add -A (temporary index)" });
    const tree = await git.text(["write-tree"], withIndex);

    const range = [start, tree];
    const diffFlags = ["--no-ext-diff", "--no-textconv", "--no-color", "-M"];
    const [nameStatus, numstat] = await Promise.all([
      git.run(["diff", ...diffFlags, "--name-status", "-z", ...range, "--"], c),
      git.run(["diff", ...diffFlags, "--numstat", "-z", ...range, "--"], c),
    ]);
    const files = parseChangedFiles(nameStatus.stdout.toString("utf8"), numstat.stdout.toString("utf8"));

    let patch: Uint8Array | undefined;
    let patchOmitted: string | undefined;
    if (files.length > 0) {
      const maxPatchBytes = options.maxPatchBytes ?? 32 * 1024 * 1024;
      try {
        const out = await git.run(["diff", ...diffFlags, "--binary", "--full-index", ...range, "--"], {
          ...c,
          maxOutput: maxPatchBytes,
          what: "git diff (patch)",
        });
        patch = new Uint8Array(out.stdout.buffer, out.stdout.byteOffset, out.stdout.byteLength);
      } catch (err) {
        if (!(err instanceof GitError && err.reason === "output-limit")) throw err;
        patchOmitted = `the patch is larger than ${maxPatchBytes} bytes`;
      }
    }

    const commits: WorkspaceChanges["commits"] = [];
    if (head !== undefined && start !== EMPTY_TREE && start !== head) {
      const log = await git.text(["log", "--reverse", "-z", "--format=%H %s", `${start}..${head}`, "--"], c);
      for (const entry of log.split("\0")) {
        const space = entry.indexOf(" ");
        if (entry === "") continue;
        commits.push(
          space < 0
            ? { hash: entry, subject: "" }
            : { hash: entry.slice(0, space), subject: entry.slice(space + 1) },
        );
      }
    }
    return {
      files,
      commits,
      ...(patch ? { patch } : {}),
      ...(patchOmitted !== undefined ? { patchOmitted } : {}),
      git: { branch: branch ?? "HEAD", commit: head ?? "", dirty },
    };
  } finally {
    await rm(tmp, { recursive: true, force: true });
  }
}

const STATUS: Record<string, string> = {
  A: "added",
  M: "modified",
  D: "deleted",
  R: "renamed",
  C: "copied",
  T: "type-changed",
};

/** Joins `git diff --name-status -z` and `--numstat -z` output into changed files. */
export function parseChangedFiles(nameStatus: string, numstat: string): ChangedFile[] {
  const files: ChangedFile[] = [];
  const byPath = new Map<string, ChangedFile>();
  const ns = nameStatus.split("\0");
  for (let i = 0; i < ns.length;) {
    const code = ns[i++] ?? "";
    if (code === "") continue;
    const letter = code[0] ?? "";
    const twoPaths = letter === "R" || letter === "C";
    const path = twoPaths ? (i++, ns[i++]) : ns[i++];
    if (path === undefined) break;
    const file: ChangedFile = { path, status: STATUS[letter] ?? "modified" };
    files.push(file);
    byPath.set(path, file);
  }
  const st = numstat.split("\0");
  for (let i = 0; i < st.length;) {
    const head = st[i++] ?? "";
    if (head === "") continue;
    const [ins, del, inline = ""] = head.split("\t");
    // A rename has an empty path here, then the old and the new path as separate fields.
    const path = inline !== "" ? inline : (i++, st[i++]);
    const file = path !== undefined ? byPath.get(path) : undefined;
    if (!file) continue;
    if (ins === "-" && del === "-") {
      file.binary = true;
    } else {
      file.insertions = Number(ins);
      file.deletions = Number(del);
    }
  }
  return files;
}
