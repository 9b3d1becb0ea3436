// A git smart-HTTP server on 127.0.0.1 for the workspace tests: a node http server that requires
// basic auth with one token and runs `git http-backend` as a CGI per request.
import { execFile, spawn } from "node:child_process";
import { mkdir, mkdtemp, rm, writeFile } from "node:fs/promises";
import { createServer } from "node:http";
import type { IncomingMessage, Server, ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { promisify } from "node:util";

const run = promisify(execFile);

/** Environment of the test's own git commands: no user or system config, fixed identity. */
export const PLAIN_GIT_ENV: NodeJS.ProcessEnv = {
  PATH: process.env.PATH,
  HOME: tmpdir(),
  GIT_CONFIG_NOSYSTEM: "1",
  GIT_CONFIG_GLOBAL: "/dev/null",
  GIT_AUTHOR_NAME: "Test",
  GIT_AUTHOR_EMAIL: "test@example.com",
  GIT_COMMITTER_NAME: "Test",
  GIT_COMMITTER_EMAIL: "test@example.com",
  GIT_TERMINAL_PROMPT: "0",
  LC_ALL: "C",
};

/** Runs the real git CLI for test setup and checks (never through the code under test). */
export async function git(cwd: string, ...args: string[]): Promise<string> {
  const { stdout } = await run("git", args, { cwd, env: PLAIN_GIT_ENV, maxBuffer: 64 * 1024 * 1024 });
  return stdout.trim();
}

/** One request the server saw. */
export interface SeenRequest {
  method: string;
  path: string;
  /** Whether it carried the right token. */
  authorized: boolean;
  status: number;
}

/** Files of a commit: path -> content; `null` deletes the file. */
export type Files = Record<string, string | Uint8Array | null>;

/** Options of {@link GitServer.start}. */
export interface GitServerOptions {
  /** The password every request must carry (any user name). */
  token: string;
  /** Repositories readable without credentials. */
  publicRepos?: string[];
}

/** A smart-HTTP git server over `git http-backend`; `await using` stops it and removes its repositories. */
export class GitServer implements AsyncDisposable {
  readonly requests: SeenRequest[] = [];

  private constructor(
    private readonly server: Server,
    /** Directory of the bare repositories (`GIT_PROJECT_ROOT`). */
    readonly root: string,
    private readonly options: GitServerOptions,
  ) {}

  /** Starts a server on a free port of 127.0.0.1. */
  static async start(options: GitServerOptions): Promise<GitServer> {
    const root = await mkdtemp(join(tmpdir(), "git-server-"));
    const server = createServer((req, res) => self.handle(req, res));
    const self = new GitServer(server, root, options);
    await new Promise<void>((resolve, reject) => {
      server.once("error", reject);
      server.listen(0, "127.0.0.1", () => resolve());
    });
    return self;
  }

  /** Port the server listens on. */
  get port(): number {
    return (this.server.address() as AddressInfo).port;
  }

  /** The clone URL of a repository (no credentials). */
  url(repo: string): string {
    return `http://127.0.0.1:${this.port}/${repo}.git`;
  }

  /** Path of a bare repository. */
  barePath(repo: string): string {
    return join(this.root, `${repo}.git`);
  }

  /**
   * Creates a bare repository with one commit of `files` on `main`, plus one commit per extra
   * branch on top of it. Returns the commit hashes by branch.
   */
  async createRepo(
    repo: string,
    files: Files,
    branches: Record<string, Files> = {},
  ): Promise<Record<string, string>> {
    const bare = this.barePath(repo);
    await mkdir(bare, { recursive: true });
    await git(bare, "init", "--quiet", "--bare", "--initial-branch=main");
    await git(bare, "config", "http.receivepack", "true");
    const work = await mkdtemp(join(tmpdir(), "git-seed-"));
    try {
      await git(work, "init", "--quiet", "--initial-branch=main");
      const hashes: Record<string, string> = { main: await commitFiles(work, files, "initial") };
      for (const [branch, branchFiles] of Object.entries(branches)) {
        await git(work, "checkout", "--quiet", "-b", branch, "main");
        hashes[branch] = await commitFiles(work, branchFiles, `on ${branch}`);
      }
      await git(work, "push", "--quiet", bare, "--all");
      return hashes;
    } finally {
      await rm(work, { recursive: true, force: true });
    }
  }

  /** Adds a commit to `branch` of the bare repository, as another user would; returns its hash. */
  async commitUpstream(repo: string, files: Files, message: string, branch = "main"): Promise<string> {
    const work = await mkdtemp(join(tmpdir(), "git-upstream-"));
    try {
      await git(work, "clone", "--quiet", "--branch", branch, "--", this.barePath(repo), ".");
      const hash = await commitFiles(work, files, message);
      await git(work, "push", "--quiet", "origin", branch);
      return hash;
    } finally {
      await rm(work, { recursive: true, force: true });
    }
  }

  /** Adds a lightweight tag to the bare repository. */
  async tag(repo: string, name: string, commit: string): Promise<void> {
    await git(this.barePath(repo), "tag", name, commit);
  }

  /** The commit a branch of the bare repository points at. */
  async head(repo: string, branch = "main"): Promise<string> {
    return git(this.barePath(repo), "rev-parse", `refs/heads/${branch}`);
  }

  async stop(): Promise<void> {
    this.server.closeAllConnections();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
    await rm(this.root, { recursive: true, force: true });
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.stop();
  }

  private handle(req: IncomingMessage, res: ServerResponse): void {
    const url = new URL(req.url ?? "/", "http://127.0.0.1");
    const seen: SeenRequest = {
      method: req.method ?? "GET",
      path: url.pathname,
      authorized: false,
      status: 0,
    };
    this.requests.push(seen);
    const user = this.authorize(req.headers.authorization);
    seen.authorized = user !== undefined;
    // A repository's name may have folders in it, as on a hosting service (`acme/api`).
    const repo = /^\/(.+?)\.git\//.exec(url.pathname)?.[1];
    const isPublic = repo !== undefined && (this.options.publicRepos ?? []).includes(repo);
    if (user === undefined && !isPublic) {
      seen.status = 401;
      res.writeHead(401, { "WWW-Authenticate": 'Basic realm="git"', "Content-Type": "text/plain" });
      res.end("authentication required\n");
      req.resume();
      return;
    }
    const header = (name: string): string => {
      const value = req.headers[name];
      return Array.isArray(value) ? value.join(", ") : (value ?? "");
    };
    const env: NodeJS.ProcessEnv = {
      ...PLAIN_GIT_ENV,
      GIT_PROJECT_ROOT: this.root,
      GIT_HTTP_EXPORT_ALL: "1",
      PATH_INFO: decodeURIComponent(url.pathname),
      REQUEST_METHOD: req.method ?? "GET",
      QUERY_STRING: url.search.replace(/^\?/, ""),
      CONTENT_TYPE: header("content-type"),
      REMOTE_USER: user ?? "",
      REMOTE_ADDR: "127.0.0.1",
      ...(req.headers["content-length"] !== undefined ? { CONTENT_LENGTH: header("content-length") } : {}),
      ...(req.headers["content-encoding"] !== undefined
        ? { HTTP_CONTENT_ENCODING: header("content-encoding") }
        : {}),
      ...(req.headers["git-protocol"] !== undefined ? { HTTP_GIT_PROTOCOL: header("git-protocol") } : {}),
    };
    const cgi = spawn("git", ["http-backend"], { env, stdio: ["pipe", "pipe", "pipe"] });
    req.pipe(cgi.stdin);
    cgi.stdin.on("error", () => undefined);
    cgi.stderr.resume();
    let head = Buffer.alloc(0);
    let headersDone = false;
    cgi.stdout.on("data", (chunk: Buffer) => {
      if (headersDone) {
        res.write(chunk);
        return;
      }
      head = Buffer.concat([head, chunk]);
      const crlf = head.indexOf("\r\n\r\n");
      const lf = head.indexOf("\n\n");
      const end = crlf >= 0 && (lf < 0 || crlf < lf) ? crlf + 4 : lf >= 0 ? lf + 2 : -1;
      if (end < 0) return;
      headersDone = true;
      let status = 200;
      const headers: Record<string, string> = {};
      for (const line of head.subarray(0, end).toString("latin1").split(/\r?\n/)) {
        const colon = line.indexOf(":");
        if (colon <= 0) continue;
        const name = line.slice(0, colon).trim();
        const value = line.slice(colon + 1).trim();
        if (name.toLowerCase() === "status") status = Number.parseInt(value, 10) || 200;
        else headers[name] = value;
      }
      seen.status = status;
      res.writeHead(status, headers);
      res.write(head.subarray(end));
    });
    cgi.on("close", () => {
      if (!headersDone) {
        seen.status = 502;
        res.writeHead(502).end();
      } else res.end();
    });
    cgi.on("error", () => {
      if (!res.headersSent) res.writeHead(500);
      res.end();
    });
  }

  /** The user name of a request carrying the token, else undefined. */
  private authorize(authorization: string | undefined): string | undefined {
    const match = /^Basic\s+(.+)$/i.exec(authorization ?? "");
    if (!match?.[1]) return undefined;
    const decoded = Buffer.from(match[1], "base64").toString("utf8");
    const colon = decoded.indexOf(":");
    if (colon < 0) return undefined;
    const user = decoded.slice(0, colon);
    return decoded.slice(colon + 1) === this.options.token ? user || "git" : undefined;
  }
}

/** Writes `files` into the working tree `work` and commits them; returns the commit hash. */
export async function commitFiles(work: string, files: Files, message: string): Promise<string> {
  for (const [path, content] of Object.entries(files)) {
    const file = join(work, path);
    if (content === null) {
      await rm(file, { force: true });
    } else {
      await mkdir(dirname(file), { recursive: true });
      await writeFile(file, content);
    }
  }
  await git(work, "add", "--all");
  await git(work, "commit", "--quiet", "--allow-empty", "-m", message);
  return git(work, "rev-parse", "HEAD");
}
