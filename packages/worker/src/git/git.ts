import { spawn } from "node:child_process";
import { lstat, readFile, realpath } from "node:fs/promises";
import { dirname, join } from "node:path";
import type { Logger } from "pino";
import type { GitToken } from "./git-credentials.js";
import { Askpass } from "./git-credentials.js";
import { SECRET_ENV_VARS } from "../shared/redact.js";
import type { SecretRedactor } from "../shared/redact.js";
import type { GitFailureReason } from "./git-errors.js";
import { GitError } from "./git-errors.js";

/** How the worker runs git. Durations in ms. */
export interface GitRunnerOptions {
  /** The git executable. @default "git" */
  binary?: string;
  /** Allow `file://` and local-path repositories (`protocol.file.allow`). @default false */
  allowLocalRepos?: boolean;
  /** Allow `http://` repositories (`protocol.http.allow`). @default false */
  allowHttp?: boolean;
  /** Time limit of one git call. @default 60_000 */
  timeout?: number;
  /** Time limit of a clone or fetch. @default 600_000 */
  cloneTimeout?: number;
  /** Time limit of a push. @default 300_000 */
  pushTimeout?: number;
  /** Largest stdout kept from one call. @default 16 MiB */
  maxOutputBytes?: number;
  /** Private key for ssh remotes (`ssh -i`). */
  sshKeyFile?: string;
  /** Where the askpass helper directory is created (must allow executing). @default os.tmpdir() */
  askpassDir?: string;
  /** Environment variables never passed to git (besides the well-known secret ones). */
  stripEnv?: string[];
  /** Extra environment for every git call. */
  env?: Record<string, string>;
  logger?: Logger;
  redactor?: SecretRedactor;
}

/** Options of one git call. */
export interface GitCall {
  cwd?: string;
  /** Time limit in ms. @default the runner's `timeout` */
  timeout?: number;
  signal?: AbortSignal;
  /** Handed to git through the askpass helper, for network calls only. */
  token?: GitToken;
  /** Written to git's stdin. */
  input?: string | Uint8Array;
  /** Extra environment for this call (e.g. `GIT_INDEX_FILE`). */
  env?: Record<string, string>;
  /** Largest stdout kept. @default the runner's `maxOutputBytes` */
  maxOutput?: number;
  /** What the call does, for messages: `git clone of https://host/repo`. @default `git <command>` */
  what?: string;
  /** Exit codes that are not failures (e.g. 1 for `diff --quiet`). @default [0] */
  okCodes?: number[];
  /** Logger of the task the call is for (carries its taskID). @default the runner's logger */
  logger?: Logger;
}

/** A call in `cwd` for a task: its abort signal and its logger, when it has them. */
export function gitCall(
  task: { signal?: AbortSignal | undefined; logger?: Logger | undefined },
  cwd: string,
): GitCall {
  return {
    cwd,
    ...(task.signal ? { signal: task.signal } : {}),
    ...(task.logger ? { logger: task.logger } : {}),
  };
}

/** What a finished git call printed. */
export interface GitOutput {
  code: number;
  stdout: Buffer;
  stderr: string;
}

/** Git environment variables kept from the worker's environment; every other `GIT_*` is dropped. */
const KEPT_GIT_ENV = new Set([
  "GIT_SSL_CAINFO",
  "GIT_SSL_CAPATH",
  "GIT_SSL_CERT",
  "GIT_SSL_KEY",
  "GIT_HTTP_USER_AGENT",
  "GIT_HTTP_LOW_SPEED_LIMIT",
  "GIT_HTTP_LOW_SPEED_TIME",
  "GIT_EXEC_PATH",
]);

/**
 * Keys of a repository's own config that make git run a command, by the last part of their name
 * (`filter.<driver>.clean`, `diff.<driver>.textconv`, …), with the value that turns each off.
 * The workspace's config is written by the agent: these are overridden on every call.
 */
const COMMAND_KEYS: [RegExp, string][] = [
  [/^filter\..+\.(clean|smudge|process)$/, ""],
  [/^filter\..+\.required$/, "false"],
  [/^diff\..+\.(command|textconv)$/, ""],
  [/^merge\..+\.driver$/, ""],
  [/^remote\..+\.uploadpack$/, "git-upload-pack"],
  [/^remote\..+\.receivepack$/, "git-receive-pack"],
  [/^credential\..+\.helper$/, ""],
  [/^pager\..+$/, "false"],
];

/**
 * `-c` overrides for the command-running keys a repository's config sets: each key the config
 * names is set again (command-line config wins) to the value that runs nothing.
 */
export function commandOverrides(keys: readonly string[]): string[] {
  const out: string[] = [];
  for (const key of new Set(keys.map((k) => k.trim()).filter((k) => k !== ""))) {
    const rule = COMMAND_KEYS.find(([pattern]) => pattern.test(key.toLowerCase()));
    if (rule && !/[\n=]/.test(key)) out.push("-c", `${key}=${rule[1]}`);
  }
  return out;
}

/**
 * Words one of which any config that sets a {@link COMMAND_KEYS} key, includes another file or
 * adds a per-worktree config must contain (section names are matched case-insensitively and
 * cannot be escaped).
 */
const COMMAND_CONFIG_WORDS = /filter|diff|merge|remote|credential|pager|include|worktree/i;

/**
 * Whether the repository at `gitDir` reads only its own `config` file and that file cannot set a
 * key that runs a command, so `git config --list` need not be started to find out. Anything else
 * (a `.git` file or link, a `commondir`, an unreadable config, one of the words above) says no,
 * and the caller asks git. The file may change between this read and the git call, as it may
 * after `git config --list`: the window is the same as before this check.
 */
export async function configRunsNothing(gitDir: string): Promise<boolean> {
  try {
    if (!(await lstat(gitDir)).isDirectory()) return false;
    const commondir = await lstat(join(gitDir, "commondir")).then(
      () => true,
      (err: NodeJS.ErrnoException) => err.code !== "ENOENT",
    );
    if (commondir) return false;
    const config = await lstat(join(gitDir, "config"));
    if (!config.isFile() || config.size > 64 * 1024) return false;
    return !COMMAND_CONFIG_WORDS.test(await readFile(join(gitDir, "config"), "utf8"));
  } catch {
    return false;
  }
}

const STDERR_LIMIT = 64 * 1024;

/** Time limits of git calls unless configured, in ms: any call, a clone or fetch, a push. */
export const GIT_TIMEOUTS = { call: 60_000, clone: 600_000, push: 300_000 } as const;

/**
 * Runs the git CLI safely: `spawn` without a shell (so arguments are never interpreted), hardening
 * `-c` options on every call (only https/ssh transports, plus http and file when allowed; no `ext::`;
 * no hooks, fsmonitor or credential helpers), `GIT_TERMINAL_PROMPT=0`, an English locale for error
 * classification, a time limit that kills git's whole process group, and an AbortSignal.
 *
 * Nothing a workspace's config says can make git run a program: no system or global config is
 * read, the environment names the pager, editors, askpass and ssh command (the environment wins
 * over config), fixed `-c` options turn off the rest (gpg, alternate refs, hooks, fsmonitor), and
 * before each call in a repository the keys its config sets that run commands (filter, diff and
 * merge drivers, upload/receive-pack, credential helpers, pagers) are overridden to run nothing.
 *
 * Tokens reach git only through {@link Askpass} and the child's environment.
 */
export class Git {
  private askpass: Promise<Askpass> | undefined;
  private readonly baseArgs: string[];
  private readonly baseEnv: Record<string, string>;
  /** Time limit of a clone or fetch, ms. */
  readonly cloneTimeout: number;
  /** Time limit of a push, ms. */
  readonly pushTimeout: number;

  constructor(private readonly options: GitRunnerOptions = {}) {
    this.cloneTimeout = options.cloneTimeout ?? GIT_TIMEOUTS.clone;
    this.pushTimeout = options.pushTimeout ?? GIT_TIMEOUTS.push;
    const allow = (yes: boolean | undefined) => (yes ? "always" : "never");
    this.baseArgs = [
      ...["-c", "protocol.allow=never"],
      ...["-c", "protocol.https.allow=always"],
      ...["-c", "protocol.ssh.allow=always"],
      ...["-c", `protocol.http.allow=${allow(options.allowHttp)}`],
      ...["-c", `protocol.file.allow=${allow(options.allowLocalRepos)}`],
      ...["-c", "protocol.ext.allow=never"],
      ...["-c", "protocol.git.allow=never"],
      // A workspace's own config and hooks are written by the agent: none of them may run with a
      // token in the environment, nor redirect credentials.
      ...["-c", "core.hooksPath=/dev/null"],
      ...["-c", "core.fsmonitor=false"],
      ...["-c", "credential.helper="],
      ...["-c", "submodule.recurse=false"],
      ...["-c", "gc.auto=0"],
      ...["-c", "maintenance.auto=false"],
      ...["-c", "commit.gpgSign=false"],
      ...["-c", "tag.gpgSign=false"],
      ...["-c", "push.gpgSign=false"],
      ...["-c", "log.showSignature=false"],
      ...["-c", "gpg.program=false"],
      ...["-c", "gpg.ssh.program=false"],
      ...["-c", "gpg.x509.program=false"],
      ...["-c", "core.askPass="],
      ...["-c", "core.gitProxy="],
      ...["-c", "core.alternateRefsCommand="],
      ...["-c", "core.pager=cat"],
      ...["-c", "core.editor=:"],
      ...["-c", "sequence.editor=:"],
      ...["-c", "advice.detachedHead=false"],
      ...["-c", "color.ui=false"],
    ];
    const strip = new Set([...SECRET_ENV_VARS, ...(options.stripEnv ?? []), "SSH_ASKPASS"]);
    const env: Record<string, string> = {};
    for (const [key, value] of Object.entries(process.env)) {
      if (value === undefined || strip.has(key)) continue;
      if ((key.startsWith("GIT_") && !KEPT_GIT_ENV.has(key)) || key.startsWith("STATION_GIT_")) continue;
      env[key] = value;
    }
    const ssh = ["ssh", "-o", "BatchMode=yes"];
    if (options.sshKeyFile !== undefined) ssh.push("-i", options.sshKeyFile, "-o", "IdentitiesOnly=yes");
    Object.assign(env, {
      // No system or global config: only the repository's own, whose commands are overridden.
      GIT_CONFIG_NOSYSTEM: "1",
      GIT_CONFIG_GLOBAL: "/dev/null",
      // These beat any config; an empty GIT_ASKPASS runs no askpass (the token call sets its own).
      GIT_ASKPASS: "",
      SSH_ASKPASS: "",
      GIT_PAGER: "cat",
      PAGER: "cat",
      GIT_EDITOR: ":",
      GIT_SEQUENCE_EDITOR: ":",
      EDITOR: ":",
      VISUAL: ":",
      GIT_TERMINAL_PROMPT: "0",
      GCM_INTERACTIVE: "never",
      GIT_SSH_COMMAND: ssh.map(shellQuote).join(" "),
      LC_ALL: "C",
      LANGUAGE: "C",
      ...options.env,
    });
    this.baseEnv = env;
  }

  /** Runs `git <args>`; rejects with a {@link GitError} (or the abort reason) on failure. */
  async run(args: string[], call: GitCall = {}): Promise<GitOutput> {
    const what = call.what ?? `git ${args[0] ?? ""}`;
    call.signal?.throwIfAborted();
    // Only ever act on the repository at cwd: never discover one in a parent directory.
    const ceiling: Record<string, string> =
      call.cwd !== undefined ? { GIT_CEILING_DIRECTORIES: dirname(call.cwd) } : {};
    const env: Record<string, string> = { ...this.baseEnv, ...ceiling, ...call.env };
    if (call.token) Object.assign(env, (await this.askpassHelper()).env(call.token));
    const timeout = call.timeout ?? this.options.timeout ?? GIT_TIMEOUTS.call;
    const maxOutput = call.maxOutput ?? this.options.maxOutputBytes ?? 16 * 1024 * 1024;
    const overrides = call.cwd !== undefined ? await this.repoOverrides(call.cwd, env, call.signal) : [];
    const started = Date.now();
    const out = await new Promise<GitOutput & { ended?: "timeout" | "abort" | "output" | Error }>(
      (resolve) => {
        const child = spawn(this.options.binary ?? "git", [...this.baseArgs, ...overrides, ...args], {
          cwd: call.cwd,
          env,
          detached: true,
          stdio: [call.input === undefined ? "ignore" : "pipe", "pipe", "pipe"],
          windowsHide: true,
        });
        const chunks: Buffer[] = [];
        let size = 0;
        let stderr = "";
        let ended: "timeout" | "abort" | "output" | Error | undefined;
        const kill = (why: "timeout" | "abort" | "output") => {
          ended ??= why;
          try {
            if (child.pid !== undefined) process.kill(-child.pid, "SIGKILL");
          } catch {
            child.kill("SIGKILL");
          }
        };
        const timer = setTimeout(() => kill("timeout"), timeout);
        const onAbort = () => kill("abort");
        call.signal?.addEventListener("abort", onAbort, { once: true });
        child.stdout?.on("data", (chunk: Buffer) => {
          size += chunk.length;
          if (size > maxOutput) kill("output");
          else chunks.push(chunk);
        });
        child.stderr?.setEncoding("utf8");
        child.stderr?.on("data", (chunk: string) => {
          if (stderr.length < STDERR_LIMIT) stderr += chunk;
        });
        if (call.input !== undefined && child.stdin) {
          child.stdin.on("error", () => undefined);
          child.stdin.end(call.input);
        }
        child.on("error", (err) => {
          ended ??= err;
        });
        child.on("close", (code) => {
          clearTimeout(timer);
          call.signal?.removeEventListener("abort", onAbort);
          resolve({ code: code ?? -1, stdout: Buffer.concat(chunks), stderr, ...(ended ? { ended } : {}) });
        });
      },
    );
    const duration = Date.now() - started;
    (call.logger ?? this.options.logger)?.debug(
      { git: args[0], what, code: out.code, duration },
      "git call finished",
    );
    if (out.ended === "abort") throw call.signal?.reason ?? new Error("aborted");
    if (out.ended === "timeout") {
      throw new GitError("timeout", `${what} timed out after ${timeout / 1000}s (retryable)`);
    }
    if (out.ended === "output") {
      throw new GitError("output-limit", `${what}: output larger than ${maxOutput} bytes`);
    }
    if (out.ended instanceof Error) {
      const missing = (out.ended as NodeJS.ErrnoException).code === "ENOENT";
      throw new GitError(
        "failed",
        missing
          ? `git not found (${this.options.binary ?? "git"}): install git (apt-get install git) or set git.binary`
          : `${what}: could not start git: ${out.ended.message}`,
        { cause: out.ended },
      );
    }
    if (!(call.okCodes ?? [0]).includes(out.code)) {
      throw this.failure(what, out.stderr, call.token);
    }
    return { code: out.code, stdout: out.stdout, stderr: out.stderr };
  }

  /**
   * The `-c` overrides for the command-running keys the repository at `cwd` configures (its own
   * config and what that includes; `git config --list` runs nothing). None outside a repository,
   * and none, without starting git, for a repository whose config cannot name such a key (see
   * {@link configRunsNothing}).
   */
  private async repoOverrides(
    cwd: string,
    gitEnv: Record<string, string>,
    signal: AbortSignal | undefined,
  ): Promise<string[]> {
    if (await configRunsNothing(gitEnv.GIT_DIR ?? join(cwd, ".git"))) return [];
    const out = await new Promise<string>((resolve) => {
      const child = spawn(
        this.options.binary ?? "git",
        [...this.baseArgs, "config", "--list", "--name-only", "-z"],
        {
          cwd,
          env: gitEnv,
          stdio: ["ignore", "pipe", "ignore"],
          ...(signal ? { signal } : {}),
          timeout: 10_000,
        },
      );
      let text = "";
      child.stdout.setEncoding("utf8");
      child.stdout.on("data", (chunk: string) => {
        if (text.length < 1_000_000) text += chunk;
      });
      child.on("error", () => resolve(""));
      child.on("close", () => resolve(text));
    });
    return commandOverrides(out.split("\0"));
  }

  /** Runs `git <args>` and returns stdout as text without the trailing newline. */
  async text(args: string[], call: GitCall = {}): Promise<string> {
    const out = await this.run(args, call);
    return out.stdout.toString("utf8").replace(/\n$/, "");
  }

  /** Removes the askpass helper. */
  async dispose(): Promise<void> {
    const helper = this.askpass;
    this.askpass = undefined;
    if (helper) await (await helper).dispose();
  }

  /** Turns git's stderr into a classified error whose message carries no secret. */
  failure(what: string, stderr: string, token: GitToken | undefined): GitError {
    const { reason, summary } = classifyGitFailure(stderr, token !== undefined);
    let detail = lastLines(stderr);
    if (token) detail = detail.split(token.value).join("[REDACTED]");
    if (this.options.redactor) detail = this.options.redactor.redact(detail);
    return new GitError(reason, `${what} failed: ${summary}${detail ? ` (git: ${detail})` : ""}`);
  }

  private askpassHelper(): Promise<Askpass> {
    this.askpass ??= Askpass.create(this.options.askpassDir);
    return this.askpass;
  }
}

/** Reads git's stderr: the failure reason and a sentence saying what to do. */
export function classifyGitFailure(
  stderr: string,
  hadToken: boolean,
): { reason: GitFailureReason; summary: string } {
  const l = stderr.toLowerCase();
  const has = (...needles: (string | RegExp)[]) =>
    needles.some((n) => (typeof n === "string" ? l.includes(n) : n.test(l)));
  if (has("host key verification failed")) {
    return { reason: "auth", summary: "the ssh host key is unknown or changed: add it to known_hosts" };
  }
  if (
    has(
      "authentication failed",
      "could not read username",
      "could not read password",
      "terminal prompts disabled",
      "permission denied (publickey",
      "invalid username or password",
      /returned error: 40[13]/,
      /http 40[13]\b/,
    )
  ) {
    return {
      reason: "auth",
      summary: hadToken
        ? "authentication failed: the token was refused; check it and its access to the repository"
        : "the repository needs credentials and none were given: set workspace.git.tokenFromKV or the worker's git.tokenEnv",
    };
  }
  if (
    has(
      /repository '.*' not found/,
      "repository not found",
      "does not appear to be a git repository",
      "not a git repository",
      /returned error: 404/,
    )
  ) {
    return { reason: "repository-not-found", summary: "repository not found (or the token cannot see it)" };
  }
  if (
    has(
      /remote branch .* not found/,
      "couldn't find remote ref",
      /pathspec .* did not match/,
      "unknown revision",
      "not a valid object name",
      "reference is not a tree",
      "invalid reference",
      "needed a single revision",
      "bad revision",
      "not our ref",
    )
  ) {
    return { reason: "ref-not-found", summary: "branch or ref not found" };
  }
  if (
    has("[rejected]", "non-fast-forward", "[remote rejected]", "failed to push some refs", "protected branch")
  ) {
    return {
      reason: "rejected",
      summary:
        "the remote rejected the push (it has commits this workspace lacks, or the branch is protected)",
    };
  }
  if (
    has(
      "not possible to fast-forward",
      "diverging branches",
      "would be overwritten",
      "conflict",
      "your local changes",
      "untracked working tree files",
    )
  ) {
    return {
      reason: "conflict",
      summary: "the workspace cannot be fast-forwarded (local commits or changes conflict with the remote)",
    };
  }
  if (
    has(
      "could not resolve host",
      "couldn't resolve host",
      "temporary failure in name resolution",
      "failed to connect",
      "couldn't connect to server",
      "connection refused",
      "connection timed out",
      "operation timed out",
      "network is unreachable",
      "no route to host",
      "connection reset",
      "ssl_connect",
      "gnutls",
      "tls connection",
      "unexpected disconnect",
      "early eof",
      "the remote end hung up unexpectedly",
      "rpc failed",
      /returned error: (5\d\d|429)/,
    )
  ) {
    return { reason: "unavailable", summary: "the git host could not be reached (retryable)" };
  }
  return { reason: "failed", summary: "git reported an error" };
}

/** The last meaningful lines of git's stderr (hints and progress dropped), one line, capped. */
function lastLines(stderr: string): string {
  const lines = stderr
    .split(/\r?\n|\r/)
    .map((line) => line.trim())
    .filter(
      (line) =>
        line !== "" &&
        !line.startsWith("hint:") &&
        !/^(remote: )?(counting|compressing|receiving|resolving|enumerating|total)/i.test(line),
    );
  const text = lines.slice(-3).join(" | ");
  return text.length > 400 ? `${text.slice(0, 400)}…` : text;
}

function shellQuote(value: string): string {
  return /^[A-Za-z0-9_./=:-]+$/.test(value) ? value : `'${value.replace(/'/g, `'\\''`)}'`;
}

/** HEAD's commit and branch, and whether the working tree differs from it. */
export interface RepoSummary {
  /** The commit HEAD points at; undefined in a repository without commits. */
  head: string | undefined;
  /** The checked-out branch; undefined on a detached HEAD. */
  branch: string | undefined;
  /** The working tree or index differs from HEAD (untracked files count). */
  dirty: boolean;
}

/** A repository found by {@link RepoState.pinned}. */
export interface PinnedRepo {
  /** `<cwd>/.git`. */
  gitDir: string;
  /** `GIT_DIR` and `GIT_WORK_TREE` for further calls about this repository. */
  env: Record<string, string>;
  summary: RepoSummary;
}

/** Parses `git status --porcelain=v2 --branch -z`. */
export function parseStatusV2(output: string): RepoSummary {
  const summary: RepoSummary = { head: undefined, branch: undefined, dirty: false };
  for (const record of output.split("\0")) {
    if (record.startsWith("# branch.oid ")) {
      const oid = record.slice("# branch.oid ".length);
      summary.head = oid === "(initial)" ? undefined : oid;
    } else if (record.startsWith("# branch.head ")) {
      const head = record.slice("# branch.head ".length);
      summary.branch = head === "(detached)" ? undefined : head;
    } else if (record !== "" && !record.startsWith("# ")) {
      summary.dirty = true;
    }
  }
  return summary;
}

/** Reads the state of a working tree. */
export class RepoState {
  constructor(
    private readonly git: Git,
    private readonly cwd: string,
    private readonly signal?: AbortSignal,
    private readonly logger?: Logger,
  ) {}

  /** Whether `cwd` is the top of a git working tree. */
  async isRepo(): Promise<boolean> {
    try {
      const top = await this.git.text(["rev-parse", "--show-toplevel"], this.call());
      return top !== "" && (await samePath(top, this.cwd));
    } catch {
      return false;
    }
  }

  /**
   * The repository at `cwd` and its state, from one `git status`, when `cwd/.git` is a directory
   * (not a link, not a `.git` file pointing elsewhere) that holds a repository; else undefined.
   * `env` pins the repository and its working tree (`GIT_DIR`, `GIT_WORK_TREE`, which beat the
   * repository's `core.worktree`): use it for every further call about this state.
   */
  async pinned(): Promise<PinnedRepo | undefined> {
    const gitDir = join(this.cwd, ".git");
    try {
      if (!(await lstat(gitDir)).isDirectory()) return undefined;
    } catch {
      return undefined;
    }
    const env = { GIT_DIR: gitDir, GIT_WORK_TREE: this.cwd };
    try {
      const out = await this.git.run(
        ["status", "--porcelain=v2", "--branch", "-z", "--untracked-files=normal"],
        { ...this.call(), env },
      );
      return { gitDir, env, summary: parseStatusV2(out.stdout.toString("utf8")) };
    } catch (err) {
      if (err instanceof GitError && err.reason === "repository-not-found") return undefined;
      throw err;
    }
  }

  /** HEAD's commit and branch and whether the tree is dirty, from one `git status`. */
  async summary(): Promise<RepoSummary> {
    const out = await this.git.run(
      ["status", "--porcelain=v2", "--branch", "-z", "--untracked-files=normal"],
      this.call(),
    );
    return parseStatusV2(out.stdout.toString("utf8"));
  }

  /** The commit HEAD points at, or undefined in a repository without commits. */
  async head(): Promise<string | undefined> {
    const out = await this.git.run(["rev-parse", "--verify", "--quiet", "HEAD^{commit}"], {
      ...this.call(),
      okCodes: [0, 1],
    });
    const hash = out.stdout.toString("utf8").trim();
    return out.code === 0 && hash !== "" ? hash : undefined;
  }

  /** The checked-out branch, or undefined on a detached HEAD. */
  async branch(): Promise<string | undefined> {
    const out = await this.git.run(["symbolic-ref", "--quiet", "--short", "HEAD"], {
      ...this.call(),
      okCodes: [0, 1],
    });
    const name = out.stdout.toString("utf8").trim();
    return out.code === 0 && name !== "" ? name : undefined;
  }

  /** Whether the working tree or index differs from HEAD (untracked files count). */
  async dirty(): Promise<boolean> {
    const out = await this.git.run(
      ["status", "--porcelain=v1", "-z", "--untracked-files=normal"],
      this.call(),
    );
    return out.stdout.length > 0;
  }

  /** The URL git uses for `remote` (`insteadOf` rewrites applied), or undefined. */
  async remoteUrl(remote: string, push = false): Promise<string | undefined> {
    const args = ["remote", "get-url", ...(push ? ["--push"] : []), "--", remote];
    const out = await this.git.run(args, { ...this.call(), okCodes: [0, 2, 128] });
    const url = out.stdout.toString("utf8").trim();
    return out.code === 0 && url !== "" ? url : undefined;
  }

  /** The URL configured for `remote` in the repository's own config (no rewrites), or undefined. */
  async configuredRemoteUrl(remote: string): Promise<string | undefined> {
    const out = await this.git.run(["config", "--local", "--get", `remote.${remote}.url`], {
      ...this.call(),
      okCodes: [0, 1],
    });
    const url = out.stdout.toString("utf8").trim();
    return out.code === 0 && url !== "" ? url : undefined;
  }

  private call(): GitCall {
    return {
      cwd: this.cwd,
      ...(this.signal ? { signal: this.signal } : {}),
      ...(this.logger ? { logger: this.logger } : {}),
    };
  }
}

async function samePath(a: string, b: string): Promise<boolean> {
  try {
    return (await realpath(a)) === (await realpath(b));
  } catch {
    return false;
  }
}
