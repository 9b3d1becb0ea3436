import type { EventDraft, GitSpec } from "@station-coding/protocol";
import type { Logger } from "pino";
import type { Git } from "./git.js";
import { RepoState, gitCall } from "./git.js";
import type { GitToken } from "./git-credentials.js";
import { GitError, GitRefusedError } from "./git-errors.js";

/** What a sync needs besides the repository directory. */
export interface SyncContext {
  git: Git;
  /** The task's git spec, already checked by the URL policy. */
  spec: GitSpec;
  token?: GitToken;
  emit: (event: EventDraft) => void;
  signal?: AbortSignal;
  /** The task's logger. */
  logger?: Logger;
}

/** Where a synced working tree stands. */
export interface SyncState {
  commit?: string;
  branch?: string;
}

/** Config keys of a workspace repository that could redirect credentials or run commands. */
const RISKY_CONFIG = [
  /^url\./,
  /^http\./,
  /^credential\./,
  /^include\./,
  /^includeif\./,
  /^core\.(sshcommand|askpass|gitproxy)$/,
  /^remote\.[^.]+\.(proxy|uploadpack|receivepack|vcs|pushurl)$/,
];

/** Compares repository URLs ignoring a trailing `/` or `.git`. */
export function sameRepositoryUrl(a: string, b: string): boolean {
  const norm = (u: string) => u.replace(/\/+$/, "").replace(/\.git$/, "");
  return norm(a) === norm(b);
}

/**
 * Clones `spec.url` into the empty directory `dir`: `--branch`, `--depth` and `--sparse` as asked,
 * then sparse paths (`git sparse-checkout set --stdin`) and `ref` (detached). Emits `git_clone` and,
 * for a ref, `git_checkout`.
 */
export async function cloneRepository(dir: string, ctx: SyncContext): Promise<SyncState> {
  const { git, spec } = ctx;
  const started = Date.now();
  const args = ["clone", "--quiet", "--no-recurse-submodules"];
  if (spec.branch !== undefined) args.push("--branch", spec.branch);
  if (spec.depth !== undefined) args.push("--depth", String(spec.depth));
  if (spec.sparse !== undefined && spec.sparse.length > 0) args.push("--sparse");
  args.push("--", spec.url, ".");
  await git.run(args, {
    ...gitCall(ctx, dir),
    timeout: git.cloneTimeout,
    ...(ctx.token ? { token: ctx.token } : {}),
    what: `git clone of ${spec.url}`,
  });
  if (spec.sparse !== undefined && spec.sparse.length > 0) {
    await git.run(["sparse-checkout", "set", "--stdin"], {
      ...gitCall(ctx, dir),
      input: `${spec.sparse.join("\n")}\n`,
      what: `git sparse-checkout of ${spec.url}`,
    });
  }
  const repo = new RepoState(git, dir, ctx.signal, ctx.logger);
  const cloned = { commit: await repo.head(), branch: await repo.branch() };
  ctx.emit({
    type: "git_clone",
    content: spec.url,
    git: {
      url: spec.url,
      ...(cloned.branch !== undefined ? { branch: cloned.branch } : {}),
      ...(cloned.commit !== undefined ? { commit: cloned.commit } : {}),
      duration: Date.now() - started,
    },
  });
  if (spec.ref !== undefined) return checkoutRef(dir, spec.ref, ctx);
  return cloned;
}

/**
 * Brings an existing clone up to the spec: checks the remote still is `spec.url`, switches to
 * `spec.branch` or `spec.ref` when asked, and unless `spec.pull === false` fast-forwards the branch
 * from origin (`fetch` with the token, then `merge --ff-only` without it). Emits `git_checkout` and
 * `git_pull`.
 */
export async function updateRepository(dir: string, ctx: SyncContext): Promise<SyncState> {
  const { spec } = ctx;
  const repo = new RepoState(ctx.git, dir, ctx.signal, ctx.logger);
  await checkRemote(dir, "origin", spec.url, ctx, false);
  if (spec.ref !== undefined) {
    return checkoutRef(dir, spec.ref, ctx);
  }
  const current = await repo.branch();
  const pull = spec.pull !== false;
  if (spec.branch !== undefined && spec.branch !== current) {
    return switchBranch(dir, spec.branch, ctx, pull);
  }
  if (!pull) return { commit: await repo.head(), ...(current !== undefined ? { branch: current } : {}) };
  if (current === undefined) {
    ctx.emit({
      type: "git_pull",
      content: "skipped: HEAD is detached (no branch to pull)",
      git: { url: spec.url },
    });
    return { commit: await repo.head() };
  }
  return pullBranch(dir, current, ctx, spec.branch !== undefined);
}

/** Checks out `ref` (commit, tag or ref) detached, fetching it from origin when it is not local. */
export async function checkoutRef(dir: string, ref: string, ctx: SyncContext): Promise<SyncState> {
  const { git, spec } = ctx;
  const started = Date.now();
  let commit = await resolveCommit(dir, ref, ctx);
  if (commit === undefined) {
    await fetch(dir, ["origin", ref], ctx);
    commit = await resolveCommit(dir, "FETCH_HEAD", ctx);
    if (commit === undefined) {
      throw new GitError(
        "ref-not-found",
        `workspace.git.ref ${JSON.stringify(ref)}: not found in ${spec.url}`,
      );
    }
  }
  await git.run(["checkout", "--quiet", "--detach", commit, "--"], {
    ...gitCall(ctx, dir),
    what: `git checkout of ${ref}`,
  });
  ctx.emit({
    type: "git_checkout",
    content: ref,
    git: { url: spec.url, ref, commit, duration: Date.now() - started },
  });
  return { commit };
}

async function switchBranch(
  dir: string,
  branch: string,
  ctx: SyncContext,
  pull: boolean,
): Promise<SyncState> {
  const { git, spec } = ctx;
  const started = Date.now();
  const local = await resolveCommit(dir, `refs/heads/${branch}`, ctx);
  if (local === undefined || pull) {
    await fetch(dir, ["origin", `+refs/heads/${branch}:refs/remotes/origin/${branch}`], ctx);
  }
  if (local === undefined) {
    await git.run(["checkout", "--quiet", "-b", branch, "--track", `refs/remotes/origin/${branch}`, "--"], {
      ...gitCall(ctx, dir),
      what: `git checkout of branch ${branch}`,
    });
  } else {
    await git.run(["checkout", "--quiet", branch, "--"], {
      ...gitCall(ctx, dir),
      what: `git checkout of branch ${branch}`,
    });
    if (pull) await merge(dir, branch, ctx);
  }
  const commit = await new RepoState(git, dir, ctx.signal, ctx.logger).head();
  ctx.emit({
    type: "git_checkout",
    content: branch,
    git: {
      url: spec.url,
      branch,
      ...(commit !== undefined ? { commit } : {}),
      duration: Date.now() - started,
    },
  });
  return { branch, ...(commit !== undefined ? { commit } : {}) };
}

async function pullBranch(
  dir: string,
  branch: string,
  ctx: SyncContext,
  required: boolean,
): Promise<SyncState> {
  const { git, spec } = ctx;
  const started = Date.now();
  const repo = new RepoState(git, dir, ctx.signal, ctx.logger);
  const before = await repo.head();
  try {
    await fetch(dir, ["origin", `+refs/heads/${branch}:refs/remotes/origin/${branch}`], ctx);
  } catch (err) {
    // A branch the agent made and never pushed has nothing to pull.
    if (!required && err instanceof GitError && err.reason === "ref-not-found") {
      ctx.emit({
        type: "git_pull",
        content: `skipped: branch ${branch} is not on origin`,
        git: { url: spec.url, branch, ...(before !== undefined ? { commit: before } : {}) },
      });
      return { branch, ...(before !== undefined ? { commit: before } : {}) };
    }
    throw err;
  }
  await merge(dir, branch, ctx);
  const after = await repo.head();
  ctx.emit({
    type: "git_pull",
    content: before === after ? "already up to date" : `fast-forwarded ${short(before)}..${short(after)}`,
    git: {
      url: spec.url,
      branch,
      ...(after !== undefined ? { commit: after } : {}),
      duration: Date.now() - started,
    },
  });
  return { branch, ...(after !== undefined ? { commit: after } : {}) };
}

async function merge(dir: string, branch: string, ctx: SyncContext): Promise<void> {
  await ctx.git.run(["merge", "--ff-only", "--quiet", `refs/remotes/origin/${branch}`, "--"], {
    ...gitCall(ctx, dir),
    what: `git pull --ff-only of ${branch}`,
  });
}

async function fetch(dir: string, refspec: string[], ctx: SyncContext): Promise<void> {
  const { git, spec } = ctx;
  if (ctx.token) await checkRemote(dir, "origin", spec.url, ctx, false);
  const depth = spec.depth !== undefined ? [`--depth=${spec.depth}`] : [];
  await git.run(["fetch", "--quiet", "--no-tags", "--no-recurse-submodules", ...depth, "--", ...refspec], {
    ...gitCall(ctx, dir),
    timeout: git.cloneTimeout,
    ...(ctx.token ? { token: ctx.token } : {}),
    what: `git fetch from ${spec.url}`,
  });
}

async function resolveCommit(dir: string, rev: string, ctx: SyncContext): Promise<string | undefined> {
  const out = await ctx.git.run(["rev-parse", "--verify", "--quiet", "--end-of-options", `${rev}^{commit}`], {
    ...gitCall(ctx, dir),
    okCodes: [0, 1, 128],
  });
  const hash = out.stdout.toString("utf8").trim();
  return out.code === 0 && /^[0-9a-f]{40,64}$/.test(hash) ? hash : undefined;
}

/**
 * Before credentials are handed to git in an existing workspace: the remote must still resolve to
 * the URL the workspace was cloned from, and the repository's own config must not set keys that
 * could redirect the token (`url.*`, `http.*`, `credential.*`, `include.*`, ssh commands, …).
 *
 * @throws GitRefusedError naming what was changed.
 */
export async function checkRemote(
  dir: string,
  remote: string,
  expectedUrl: string,
  ctx: Pick<SyncContext, "git" | "signal" | "logger">,
  push: boolean,
): Promise<void> {
  const repo = new RepoState(ctx.git, dir, ctx.signal, ctx.logger);
  const actual = await repo.remoteUrl(remote, push);
  if (actual === undefined || !sameRepositoryUrl(actual, expectedUrl)) {
    throw new GitRefusedError(
      "workspace.git.url",
      `workspace.git.url ${JSON.stringify(expectedUrl)}: the workspace's remote "${remote}" resolves to ` +
        `${actual === undefined ? "nothing" : JSON.stringify(actual)}, not the repository it was cloned from; ` +
        "refusing to send credentials (use a new workspace name or close this one)",
    );
  }
  const out = await ctx.git.run(["config", "--local", "--name-only", "--list", "-z"], {
    ...gitCall(ctx, dir),
    okCodes: [0, 1],
  });
  const keys = out.stdout
    .toString("utf8")
    .split("\0")
    .map((k) => k.trim().toLowerCase())
    .filter((k) => k !== "");
  const risky = keys.find((key) => RISKY_CONFIG.some((pattern) => pattern.test(key)));
  if (risky !== undefined) {
    throw new GitRefusedError(
      "workspace.git.url",
      `workspace.git.url ${JSON.stringify(expectedUrl)}: the workspace's .git/config sets "${risky}", which could ` +
        "redirect credentials; remove it (git config --unset) or use a new workspace",
    );
  }
}

function short(hash: string | undefined): string {
  return hash === undefined ? "(none)" : hash.slice(0, 12);
}
