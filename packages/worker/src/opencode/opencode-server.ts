import { spawn } from "node:child_process";
import type { ChildProcess } from "node:child_process";
import { randomBytes } from "node:crypto";
import { mkdir, mkdtemp, readFile, realpath, rm, writeFile } from "node:fs/promises";
import { createRequire } from "node:module";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { ErrorCodes, StationError } from "@station-coding/protocol";
import type { Logger } from "pino";
import type { ResolvedSandbox } from "../sandbox/sandbox.js";
import { commonRoot, serverSandboxArgs, systemLayout, writeShellScript } from "../sandbox/sandbox.js";

/** How a managed server is confined (see docs/security.md). */
export interface ServerSandbox {
  sandbox: ResolvedSandbox;
  /** Directory under which every workspace this server serves lives; the only one it can write. */
  workspaceRoot: string;
  /** Files the server must also read (the station plugin); their common directory is shown read-only. */
  visible: string[];
  /** The worker's proxy socket the tools reach the network through (network allow/allowlist). */
  proxySocket?: string;
}

/** Options of a managed `opencode serve` process. */
export interface OpenCodeServerOptions {
  /** opencode binary. @default the one shipped by the pinned `opencode-ai` dependency */
  bin?: string;
  /** Config merged over the worker's defaults (providers, models, permissions). */
  config?: Record<string, unknown>;
  /** Path of an opencode config file (JSON) merged over the defaults, before `config`. */
  configFile?: string;
  /** Directory for OpenCode's own config, data, cache and state. @default a private temp dir */
  dataDir?: string;
  /** HTTP basic auth password for the server (OPENCODE_SERVER_PASSWORD). @default a random one */
  password?: string;
  /** Confine the server and its tools in the OS sandbox. @default unconfined */
  sandbox?: ServerSandbox;
  /** Extra environment for the server process (provider API keys come from the worker's env). */
  env?: Record<string, string>;
  /** Milliseconds to wait for the server to listen and be healthy. @default 30_000 */
  startTimeout?: number;
  logger: Logger;
}

const DISABLE_NETWORK_FEATURES = {
  OPENCODE_DISABLE_AUTOUPDATE: "1",
  OPENCODE_DISABLE_MODELS_FETCH: "1",
  OPENCODE_DISABLE_LSP_DOWNLOAD: "1",
  OPENCODE_DISABLE_SHARE: "1",
  OPENCODE_DISABLE_CLAUDE_CODE: "1",
};

/** The opencode binary shipped by the `opencode-ai` package. */
export function bundledOpenCodeBin(): string {
  const require = createRequire(import.meta.url);
  const pkgPath = require.resolve("opencode-ai/package.json");
  const pkg = require(pkgPath) as { bin?: Record<string, string> | string };
  const bin = typeof pkg.bin === "string" ? pkg.bin : (pkg.bin?.opencode ?? "bin/opencode");
  return join(dirname(pkgPath), bin);
}

/**
 * OpenCode runs `npm install @opencode-ai/plugin` in every config directory whose lock file does
 * not list it: that reaches the registry (no network here, and slow elsewhere) and afterwards
 * `opencode serve` ignores SIGTERM for minutes. A lock that lists the dependency skips it; the
 * plugin itself resolves from this package's own dependencies.
 */
async function seedConfigDir(dir: string): Promise<void> {
  const require = createRequire(import.meta.url);
  // The plugin package is released in lockstep with opencode-ai.
  const version = (require("opencode-ai/package.json") as { version: string }).version;
  const dependencies = { "@opencode-ai/plugin": version };
  await mkdir(join(dir, "node_modules"), { recursive: true });
  await writeFile(join(dir, "package.json"), JSON.stringify({ dependencies }));
  await writeFile(join(dir, "package-lock.json"), JSON.stringify({ packages: { "": { dependencies } } }));
}

/** Deep-merges plain objects; arrays are concatenated without duplicates. */
export function mergeConfig(
  base: Record<string, unknown>,
  over: Record<string, unknown>,
): Record<string, unknown> {
  const out: Record<string, unknown> = { ...base };
  for (const [key, value] of Object.entries(over)) {
    const current = out[key];
    if (Array.isArray(current) && Array.isArray(value)) {
      out[key] = [...new Set([...(current as unknown[]), ...(value as unknown[])])];
    } else if (isPlainObject(current) && isPlainObject(value)) {
      out[key] = mergeConfig(current, value);
    } else {
      out[key] = value;
    }
  }
  return out;
}

function isPlainObject(value: unknown): value is Record<string, unknown> {
  return value !== null && typeof value === "object" && !Array.isArray(value);
}

/**
 * A supervised `opencode serve` on loopback, with isolated config/data dirs and OpenCode's
 * network features off. If the process dies it is started again (on a new port; `url` follows).
 */
export class OpenCodeServer {
  private child: ChildProcess | undefined;
  private currentUrl = "";
  private stopping = false;
  private restarts = 0;
  private readonly listeners = new Set<(url: string) => void>();
  private ready: Promise<void> = Promise.resolve();
  private markReady: () => void = () => undefined;

  private constructor(
    private readonly o: OpenCodeServerOptions,
    private readonly env: NodeJS.ProcessEnv,
    private readonly bin: string,
    private readonly ownsDataDir: boolean,
    readonly dataDir: string,
    private readonly password: string,
    /** bwrap and its arguments before the opencode command, when sandboxed. */
    private readonly wrapper: string[],
  ) {}

  /** Starts the server and waits until it answers its health check. */
  static async start(options: OpenCodeServerOptions): Promise<OpenCodeServer> {
    const dataDir = options.dataDir ?? (await mkdtemp(join(tmpdir(), "station-opencode-")));
    for (const sub of ["home", "config", "data", "cache", "state", "tmp"])
      await mkdir(join(dataDir, sub), { recursive: true });
    await seedConfigDir(join(dataDir, "config", "opencode"));
    await seedConfigDir(join(dataDir, "home", ".config", "opencode"));
    let config: Record<string, unknown> = { autoupdate: false, share: "disabled" };
    if (options.configFile) {
      let text: string;
      try {
        text = await readFile(options.configFile, "utf8");
      } catch (err) {
        throw new StationError(
          ErrorCodes.InvalidConfig,
          `opencode config file ${options.configFile}: cannot be read`,
          {
            cause: err,
          },
        );
      }
      try {
        config = mergeConfig(config, JSON.parse(text) as Record<string, unknown>);
      } catch (err) {
        throw new StationError(
          ErrorCodes.InvalidConfig,
          `opencode config file ${options.configFile}: not valid JSON (${(err as Error).message})`,
          { cause: err },
        );
      }
    }
    if (options.config) config = mergeConfig(config, options.config);
    const password = options.password ?? randomBytes(24).toString("base64url");
    const bin = options.bin ?? bundledOpenCodeBin();
    let wrapper: string[] = [];
    let confined: NodeJS.ProcessEnv = {};
    if (options.sandbox) {
      ({ wrapper, env: confined } = await sandboxedServer(options.sandbox, dataDir, bin));
    }
    const env: NodeJS.ProcessEnv = {
      ...(options.sandbox ? serverEnv(process.env) : process.env),
      ...confined,
      ...DISABLE_NETWORK_FEATURES,
      HOME: join(dataDir, "home"),
      XDG_CONFIG_HOME: join(dataDir, "config"),
      XDG_DATA_HOME: join(dataDir, "data"),
      XDG_CACHE_HOME: join(dataDir, "cache"),
      XDG_STATE_HOME: join(dataDir, "state"),
      // OpenCode unpacks native libraries into the temp dir at every start: keep them in ours.
      TMPDIR: join(dataDir, "tmp"),
      OPENCODE_CONFIG_CONTENT: JSON.stringify(config),
      OPENCODE_SERVER_PASSWORD: password,
      ...options.env,
    };
    const server = new OpenCodeServer(options, env, bin, !options.dataDir, dataDir, password, wrapper);
    await server.spawn();
    return server;
  }

  /** Base URL of the running server, e.g. `http://127.0.0.1:41234`. */
  get url(): string {
    return this.currentUrl;
  }

  /** Process id of the running server. */
  get pid(): number | undefined {
    return this.child?.pid;
  }

  /** Times the server was restarted after dying. */
  get restartCount(): number {
    return this.restarts;
  }

  /** Environment the server runs with (for `opencode export/import` against the same storage). */
  get processEnv(): NodeJS.ProcessEnv {
    return this.env;
  }

  /** The opencode binary in use. */
  get binary(): string {
    return this.bin;
  }

  /** Calls `listener` with the new URL whenever the server was restarted. */
  onRestart(listener: (url: string) => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  private async spawn(): Promise<void> {
    const log = this.o.logger;
    const serve = [this.bin, "serve", "--hostname", "127.0.0.1", "--port", "0"];
    const [command, ...args] = this.wrapper.length > 0 ? [...this.wrapper, "--", ...serve] : serve;
    const child = spawn(command!, args, {
      env: this.env,
      cwd: join(this.dataDir, "home"),
      stdio: ["ignore", "pipe", "pipe"],
    });
    this.child = child;
    let output = "";
    const url = await new Promise<string>((resolve, reject) => {
      const timer = setTimeout(() => {
        child.kill("SIGKILL");
        reject(
          new StationError(
            ErrorCodes.AgentUnavailable,
            `opencode serve did not start within ${this.o.startTimeout ?? 30_000}ms: ${output.slice(-500)}`,
            { retryable: true },
          ),
        );
      }, this.o.startTimeout ?? 30_000);
      const onData = (chunk: Buffer) => {
        output += chunk.toString();
        const match = /listening on (http:\/\/[^\s]+)/.exec(output);
        if (match?.[1]) {
          clearTimeout(timer);
          resolve(match[1].replace(/\/$/, ""));
        }
      };
      child.stdout?.on("data", onData);
      child.stderr?.on("data", onData);
      child.once("error", (err) => {
        clearTimeout(timer);
        reject(
          new StationError(
            ErrorCodes.AgentUnavailable,
            `opencode could not be started (${this.bin}): ${err.message}`,
            {
              cause: err,
            },
          ),
        );
      });
      child.once("exit", (code, signal) => {
        clearTimeout(timer);
        reject(
          new StationError(
            ErrorCodes.AgentUnavailable,
            `opencode serve exited during start (code ${code}, signal ${signal}): ${output.slice(-500)}`,
            { retryable: true },
          ),
        );
      });
    });
    child.stdout?.removeAllListeners("data");
    child.stderr?.removeAllListeners("data");
    // Keep draining output so the pipes never fill up; keep the tail for diagnostics.
    child.stdout?.on("data", () => undefined);
    child.stderr?.on("data", (chunk: Buffer) =>
      log.debug({ opencode: chunk.toString().slice(0, 500) }, "opencode"),
    );
    child.removeAllListeners("exit");
    child.once("exit", (code, signal) => this.onExit(child, code, signal));
    this.currentUrl = url;
    await this.waitHealthy();
    log.info({ url, pid: child.pid }, "opencode server running");
  }

  private async waitHealthy(): Promise<void> {
    const deadline = Date.now() + (this.o.startTimeout ?? 30_000);
    let lastError: unknown;
    while (Date.now() < deadline) {
      try {
        const res = await fetch(`${this.currentUrl}/global/health`, { headers: this.authHeaders() });
        if (res.ok) return;
        lastError = new Error(`HTTP ${res.status}`);
      } catch (err) {
        lastError = err;
      }
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
    throw new StationError(
      ErrorCodes.AgentUnavailable,
      `opencode server at ${this.currentUrl} is not healthy`,
      {
        cause: lastError,
        retryable: true,
      },
    );
  }

  /** The basic auth header every request to the server needs. */
  authHeaders(): Record<string, string> {
    return { authorization: `Basic ${Buffer.from(`opencode:${this.password}`).toString("base64")}` };
  }

  /** Whether the server runs in the OS sandbox. */
  get sandboxed(): boolean {
    return this.wrapper.length > 0;
  }

  private onExit(child: ChildProcess, code: number | null, signal: NodeJS.Signals | null): void {
    if (this.stopping || child !== this.child) return;
    this.o.logger.error({ code, signal }, "opencode server died; restarting it");
    this.restarts += 1;
    this.ready = new Promise((resolve) => (this.markReady = resolve));
    void this.respawn();
  }

  /** Resolves when the server is running (at once, unless it is being restarted), or after `timeout` ms. */
  async whenReady(timeout = 30_000): Promise<void> {
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([this.ready, new Promise<void>((resolve) => (timer = setTimeout(resolve, timeout)))]);
    clearTimeout(timer);
  }

  /** Starts the server again, retrying with a growing delay; a running task meanwhile fails retryably. */
  private async respawn(): Promise<void> {
    for (let attempt = 1; !this.stopping; attempt += 1) {
      try {
        await this.spawn();
        for (const listener of this.listeners) listener(this.currentUrl);
        this.markReady();
        return;
      } catch (err) {
        this.o.logger.error({ err, attempt }, "opencode server restart failed; trying again");
        await new Promise((resolve) => setTimeout(resolve, Math.min(10_000, 500 * attempt)));
      }
    }
  }

  /** Stops the server and removes its private data dir (when the server created it). */
  async stop(): Promise<void> {
    this.stopping = true;
    const child = this.child;
    if (child && child.exitCode === null && child.signalCode === null) {
      // Wait on the process itself: the supervisor may be between a crash and a restart.
      const exited = new Promise<void>((resolve) => {
        if (child.exitCode !== null || child.signalCode !== null) resolve();
        else child.once("exit", () => resolve());
      });
      child.kill("SIGTERM");
      const timer = setTimeout(() => child.kill("SIGKILL"), 5_000);
      await Promise.race([exited, new Promise((resolve) => setTimeout(resolve, 8_000).unref())]);
      clearTimeout(timer);
    }
    if (this.ownsDataDir) await rm(this.dataDir, { recursive: true, force: true });
  }
}

/** Variables of the worker's environment a sandboxed server gets: basics and provider settings. */
const SERVER_ENV_NAMES = new Set([
  "PATH",
  "LANG",
  "LANGUAGE",
  "TZ",
  "SSL_CERT_FILE",
  "SSL_CERT_DIR",
  "NODE_EXTRA_CA_CERTS",
  "HTTP_PROXY",
  "HTTPS_PROXY",
  "NO_PROXY",
  "http_proxy",
  "https_proxy",
  "no_proxy",
]);
const PROVIDER_ENV =
  /^(LC_[A-Z]+|[A-Z0-9_]+_API_KEY|[A-Z0-9_]+_BASE_URL|AWS_[A-Z0-9_]+|AZURE_[A-Z0-9_]+|GOOGLE_[A-Z0-9_]+|VERTEX_[A-Z0-9_]+|ANTHROPIC_[A-Z0-9_]+|OPENAI_[A-Z0-9_]+|OPENROUTER_[A-Z0-9_]+)$/;

/**
 * The environment of a sandboxed server: nothing of the worker's own (NATS URLs and credentials,
 * git tokens, station settings), only basics and what model providers read (`*_API_KEY`, …).
 */
export function serverEnv(env: NodeJS.ProcessEnv): NodeJS.ProcessEnv {
  const out: NodeJS.ProcessEnv = {};
  for (const [name, value] of Object.entries(env)) {
    if (value === undefined) continue;
    if (SERVER_ENV_NAMES.has(name) || PROVIDER_ENV.test(name)) out[name] = value;
  }
  return out;
}

/**
 * Prepares the server's sandbox: the sandboxing shell for its bash tool, and the bwrap command
 * that shows the server the system and its own code read-only, its data directory and the
 * workspace root read-write (the workspace records in `.station-meta` and the deleted workspaces in
 * `.station-trash` hidden), nothing else.
 */
async function sandboxedServer(
  s: ServerSandbox,
  dataDir: string,
  bin: string,
): Promise<{ wrapper: string[]; env: NodeJS.ProcessEnv }> {
  await mkdir(s.workspaceRoot, { recursive: true });
  const root = await realpath(s.workspaceRoot);
  const data = await realpath(dataDir);
  const code = await commonRoot([bin, ...s.visible]);
  if (code === "/") {
    throw new StationError(
      ErrorCodes.SandboxUnavailable,
      `sandbox: the opencode binary (${bin}) and the station plugin share no directory but /; install them under one directory`,
    );
  }
  const meta = join(root, ".station-meta");
  await mkdir(meta, { recursive: true, mode: 0o700 });
  // Deleted workspaces wait there to be removed: no agent sees them.
  const trash = join(root, ".station-trash");
  await mkdir(trash, { recursive: true, mode: 0o700 });
  const layout = await systemLayout([...s.sandbox.readOnlyPaths, code]);
  const shell = await writeShellScript(join(data, "sandbox"), {
    bwrap: s.sandbox.bwrap,
    layout: await systemLayout(s.sandbox.readOnlyPaths),
    workspaceRoot: root,
    ...(s.proxySocket ? { proxySocket: s.proxySocket, socat: s.sandbox.socat } : {}),
  });
  const wrapper = [
    s.sandbox.bwrap,
    ...serverSandboxArgs(layout, [
      ["--bind", data, data],
      ["--ro-bind", join(data, "sandbox"), join(data, "sandbox")],
      ["--bind", root, root],
      ["--tmpfs", meta],
      ["--tmpfs", trash],
      ...(s.proxySocket ? [["--bind", s.proxySocket, s.proxySocket]] : []),
    ]),
    ...["--chdir", join(data, "home")],
  ];
  return { wrapper, env: { SHELL: shell, STATION_SANDBOX: "on", OPENCODE_DISABLE_PROJECT_CONFIG: "1" } };
}
