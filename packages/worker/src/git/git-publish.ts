import type { CommitInfo, EventDraft } from "@station-coding/protocol";
import type { Logger } from "pino";
import type { Git } from "./git.js";
import { RepoState, gitCall } from "./git.js";
import type { GitToken } from "./git-credentials.js";
import { checkRemote, sameRepositoryUrl } from "./git-sync.js";
import type { UrlPolicyOptions } from "./url-policy.js";
import { checkGitUrl, checkRefName, checkRemoteName } from "./url-policy.js";
import { GitError } from "./git-errors.js";

/** Who commits: name and email handed to git as `-c user.name=… -c user.email=…`. */
export interface GitAuthor {
  name: string;
  email: string;
}

/** A commit to make. */
export interface CommitOptions {
  message: string;
  /** Stage every change (`git add -A`) first. @default true */
  all?: boolean;
  /** @default the worker's configured author */
  author?: GitAuthor;
}

/** A push to make. */
export interface PushOptions {
  /** @default "origin" */
  remote?: string;
  /** Remote branch. @default the checked-out branch */
  branch?: string;
  /** Record the remote branch as the upstream (`--set-upstream`). @default false */
  setUpstream?: boolean;
}

/** What a push did. */
export interface PushInfo {
  remote: string;
  branch: string;
  commit: string;
}

/** What commit and push need besides the directory. */
export interface PublishContext {
  git: Git;
  emit?: (event: EventDraft) => void;
  signal?: AbortSignal;
  /** The task's logger. */
  logger?: Logger;
}

/**
 * Commits the workspace (`git add -A` first unless `all: false`) as `author`, and emits `git_commit`.
 *
 * @throws GitError `nothing-to-commit` when nothing is staged.
 */
export async function commitChanges(
  dir: string,
  options: CommitOptions,
  ctx: PublishContext,
): Promise<CommitInfo> {
  const { git } = ctx;
  const started = Date.now();
  const c = gitCall(ctx, dir);
  if (options.all !== false) await git.run(["add", "--all", "--", "."], { ...c, what: "git add -A" });
  const staged = await git.run(["diff", "--cached", "--quiet", "--no-ext-diff"], { ...c, okCodes: [0, 1] });
  if (staged.code === 0) {
    throw new GitError("nothing-to-commit", `commit: nothing to commit in ${dir} (no changes are staged)`);
  }
  const author = options.author ?? { name: "station-coding", email: "station-coding@localhost" };
  await git.run(
    [
      "-c",
      `user.name=${author.name}`,
      "-c",
      `user.email=${author.email}`,
      "commit",
      "--quiet",
      "--no-verify",
      "--file=-",
    ],
    { ...c, input: options.message, what: "git commit" },
  );
  const repo = new RepoState(git, dir, ctx.signal, ctx.logger);
  const hash = (await repo.head()) ?? "";
  const branch = await repo.branch();
  const stat = await git.text(
    ["show", "--no-ext-diff", "--no-textconv", "--shortstat", "--format=", "HEAD", "--"],
    c,
  );
  const info: CommitInfo = {
    hash,
    ...(branch !== undefined ? { branch } : {}),
    message: options.message,
    ...parseShortstat(stat),
  };
  ctx.emit?.({
    type: "git_commit",
    content: options.message.split("\n")[0] ?? "",
    git: {
      commit: hash,
      ...(branch !== undefined ? { branch } : {}),
      filesChanged: info.filesChanged,
      insertions: info.insertions,
      deletions: info.deletions,
      duration: Date.now() - started,
    },
  });
  return info;
}

/**
 * Pushes HEAD to `remote`/`branch` and emits `git_push`. The token goes to git (through askpass)
 * only when the remote still resolves to `clonedFrom`, the URL the workspace was cloned from and
 * checked by the URL policy; any other remote must pass the policy and gets no token.
 */
export async function pushBranch(
  dir: string,
  options: PushOptions,
  ctx: PublishContext & {
    token?: GitToken;
    clonedFrom?: string;
    policy: UrlPolicyOptions;
    org?: string;
  },
): Promise<PushInfo> {
  const { git } = ctx;
  const started = Date.now();
  const remote = checkRemoteName("push.remote", options.remote ?? "origin");
  const repo = new RepoState(git, dir, ctx.signal, ctx.logger);
  const current = await repo.branch();
  const branch = options.branch ?? current;
  if (branch === undefined) {
    throw new GitError("ref-not-found", "push.branch: HEAD is detached; name the branch to push");
  }
  checkRefName("push.branch", branch);
  const commit = await repo.head();
  if (commit === undefined) throw new GitError("ref-not-found", "push: the workspace has no commit to push");
  const url = await repo.remoteUrl(remote, true);
  if (url === undefined)
    throw new GitError("failed", `push.remote ${JSON.stringify(remote)}: no such remote`);
  checkGitUrl(url, ctx.policy, ctx.org, `remote ${remote}`);
  const trusted = ctx.clonedFrom !== undefined && sameRepositoryUrl(url, ctx.clonedFrom);
  if (ctx.token && trusted) await checkRemote(dir, remote, url, ctx, true);
  const args = ["push", "--quiet", "--porcelain", "--no-verify"];
  if (options.setUpstream && current !== undefined) args.push("--set-upstream");
  args.push("--", remote, `HEAD:refs/heads/${branch}`);
  await git.run(args, {
    ...gitCall(ctx, dir),
    timeout: git.pushTimeout,
    ...(ctx.token && trusted ? { token: ctx.token } : {}),
    what: `git push to ${url} (${branch})`,
  });
  ctx.emit?.({
    type: "git_push",
    content: `${remote} ${branch}`,
    git: { url, remote, branch, commit, duration: Date.now() - started },
  });
  return { remote, branch, commit };
}

/** Parses ` 3 files changed, 10 insertions(+), 2 deletions(-)`. */
export function parseShortstat(text: string): {
  filesChanged: number;
  insertions: number;
  deletions: number;
} {
  const num = (re: RegExp) => Number(re.exec(text)?.[1] ?? 0);
  return {
    filesChanged: num(/(\d+) files? changed/),
    insertions: num(/(\d+) insertions?\(\+\)/),
    deletions: num(/(\d+) deletions?\(-\)/),
  };
}
