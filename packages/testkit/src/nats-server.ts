import { constants } from "node:fs";
import { access, mkdir, rm, stat, writeFile } from "node:fs/promises";
import { delimiter, join } from "node:path";

import { renderNatsConfig } from "./nats-config.js";
import {
  CONTAINER_CLIENT_PORT,
  CONTAINER_MONITOR_PORT,
  CONTAINER_STORE_DIR,
  NatsContainer,
  loadDockerFallback,
} from "./nats-container.js";
import { NatsProcess } from "./nats-process.js";
import { NatsServerError } from "./nats-server-error.js";
import { tempDir } from "./unique.js";

/** Cluster membership of one node; set by {@link NatsCluster}, rarely by hand. */
export interface NatsServerClusterOptions {
  /** Cluster name, the same on every node. */
  name: string;
  /** Route listen port on 127.0.0.1; fixed so that a restarted node keeps it. */
  port: number;
  /** Route URLs of every node, this one included (nats-server ignores the route to itself). */
  routes: readonly string[];
}

/** Options of {@link NatsServer.start}. */
export interface NatsServerOptions {
  /**
   * Enable JetStream, with its store in `storeDir`.
   * @default true
   */
  jetstream?: boolean;
  /**
   * JetStream store directory. Kept by `stop()` when given here.
   * @default a fresh temp dir, removed by `stop()`
   */
  storeDir?: string;
  /** nats-server config text appended to the generated config (accounts, authorization, limits). */
  config?: string;
  /**
   * Client port on 127.0.0.1; -1 lets the server pick a free one. `restart()` reuses the chosen port.
   * @default -1
   */
  port?: number;
  /**
   * `server_name` of the server (unique within a cluster).
   * @default the server's generated id
   */
  serverName?: string;
  /**
   * Start the HTTP monitoring endpoint (`/varz`, `/jsz`, `/healthz`) on a free port, see `monitorUrl`.
   * @default false
   */
  monitor?: boolean;
  /**
   * Cluster membership; set by {@link NatsCluster}.
   * @internal
   */
  cluster?: NatsServerClusterOptions;
  /**
   * Turn on the server's debug log and copy every log line to this process's stderr.
   * @default false
   */
  debug?: boolean;
  /**
   * nats-server binary: a path, or a name looked up on PATH.
   * @default env NATS_SERVER_BIN, else `nats-server` on PATH
   */
  bin?: string;
  /**
   * When no binary is found, run the server in Docker through testcontainers (if that package is
   * installed and a Docker engine is reachable).
   * @default true, unless env NATS_SERVER_DOCKER is "0" or "false"
   */
  docker?: boolean;
  /**
   * Milliseconds to wait for the server to accept connections, at start and restart.
   * @default 10_000
   */
  startTimeout?: number;
  /**
   * Milliseconds `stop()` and `restart()` wait after SIGTERM before they SIGKILL.
   * @default 5_000
   */
  stopTimeout?: number;
}

/** Options of {@link NatsServer.stop}. */
export interface NatsServerStopOptions {
  /**
   * Keep the JetStream store directory (for a later `restart()` or to inspect it).
   * @default false
   */
  keepStore?: boolean;
}

interface ResolvedNatsServerOptions {
  jetstream: boolean;
  storeDir: string | undefined;
  config: string | undefined;
  port: number;
  serverName: string | undefined;
  monitor: boolean;
  cluster: NatsServerClusterOptions | undefined;
  debug: boolean;
  bin: { value: string; from: string } | undefined;
  docker: boolean;
  startTimeout: number;
  stopTimeout: number;
}

const INSTALL_HINT = "install it (apt-get install nats-server), set NATS_SERVER_BIN, or set NATS_URL";

function invalid(message: string): NatsServerError {
  return new NatsServerError("NATS_SERVER_INVALID_OPTION", message);
}

function resolveOptions(options: NatsServerOptions): ResolvedNatsServerOptions {
  const port = options.port ?? -1;
  // 0 is not "any port" for nats-server: it means the default, 4222.
  if (!Number.isInteger(port) || port === 0 || port < -1 || port > 65535) {
    throw invalid(`NatsServer option port ${port}: must be -1 (pick a free port) or 1..65535`);
  }
  const durations = {
    startTimeout: options.startTimeout ?? 10_000,
    stopTimeout: options.stopTimeout ?? 5_000,
  };
  for (const [name, value] of Object.entries(durations)) {
    if (!(value >= 0) || !Number.isFinite(value)) {
      throw invalid(`NatsServer option ${name} ${value}: must be a number of milliseconds >= 0`);
    }
  }
  const envBin = process.env.NATS_SERVER_BIN;
  const bin =
    options.bin !== undefined
      ? { value: options.bin, from: "option bin" }
      : envBin
        ? { value: envBin, from: "NATS_SERVER_BIN" }
        : undefined;
  const dockerEnv = process.env.NATS_SERVER_DOCKER?.toLowerCase();
  return {
    jetstream: options.jetstream ?? true,
    storeDir: options.storeDir,
    config: options.config,
    port,
    serverName: options.serverName,
    monitor: options.monitor ?? false,
    cluster: options.cluster,
    debug: options.debug ?? false,
    bin,
    docker: options.docker ?? !(dockerEnv === "0" || dockerEnv === "false"),
    ...durations,
  };
}

async function isExecutableFile(path: string): Promise<boolean> {
  try {
    await access(path, constants.X_OK);
    return (await stat(path)).isFile();
  } catch {
    return false;
  }
}

/** Resolves a binary given as a path, or as a name to look up on PATH. */
async function findBinary(name: string): Promise<string | undefined> {
  if (name.includes("/")) return (await isExecutableFile(name)) ? name : undefined;
  for (const dir of (process.env.PATH ?? "").split(delimiter)) {
    if (dir === "") continue;
    const candidate = join(dir, name);
    if (await isExecutableFile(candidate)) return candidate;
  }
  return undefined;
}

function notFound(options: ResolvedNatsServerOptions, detail: string): NatsServerError {
  const what = options.bin
    ? `nats-server binary "${options.bin.value}" (from ${options.bin.from}) not found or not executable`
    : "nats-server not found on PATH";
  return new NatsServerError("NATS_SERVER_NOT_FOUND", `${what}: ${INSTALL_HINT} (${detail})`);
}

interface ProcessRuntime {
  kind: "process";
  bin: string;
  /** Holds the config file and the ports file. */
  workDir: string;
  process: NatsProcess;
  monitorPort: number | undefined;
}

interface ContainerRuntime {
  kind: "container";
  container: NatsContainer;
  /** False after kill() or stop(), true again after restart(). */
  up: boolean;
}

/**
 * A nats-server for tests, benchmarks and demos: one process per instance on 127.0.0.1, with a
 * random port and a temp JetStream store, killed when the test process exits.
 *
 * @example
 * await using server = await NatsServer.start();
 * const nc = await connect({ servers: server.url });
 */
export class NatsServer implements AsyncDisposable {
  readonly #options: ResolvedNatsServerOptions;
  readonly #storeDir: string;
  readonly #ownsStore: boolean;
  #runtime: ProcessRuntime | ContainerRuntime;
  #port: number;
  #stopped = false;

  private constructor(
    options: ResolvedNatsServerOptions,
    storeDir: string,
    ownsStore: boolean,
    runtime: ProcessRuntime | ContainerRuntime,
    port: number,
  ) {
    this.#options = options;
    this.#storeDir = storeDir;
    this.#ownsStore = ownsStore;
    this.#runtime = runtime;
    this.#port = port;
  }

  /**
   * Starts a server and resolves once it accepts connections.
   *
   * The binary is `options.bin`, else env `NATS_SERVER_BIN`, else `nats-server` on PATH. Without one,
   * the server runs in Docker when testcontainers is installed and a Docker engine is reachable;
   * otherwise this rejects with a {@link NatsServerError} (`NATS_SERVER_NOT_FOUND`) saying how to
   * install nats-server. A server that exits during start rejects with its last log lines.
   */
  static async start(options: NatsServerOptions = {}): Promise<NatsServer> {
    const resolved = resolveOptions(options);
    const bin = await findBinary(resolved.bin?.value ?? "nats-server");
    if (bin !== undefined) return NatsServer.#startProcess(resolved, bin);
    if (resolved.cluster) {
      throw notFound(
        resolved,
        "a cluster needs a local binary: the Docker fallback runs single servers only",
      );
    }
    if (!resolved.docker) throw notFound(resolved, "Docker fallback disabled");
    const docker = await loadDockerFallback();
    if (!docker.available) throw notFound(resolved, `no Docker fallback: ${docker.reason}`);
    if (resolved.storeDir !== undefined) {
      throw invalid(
        `NatsServer option storeDir: not supported when nats-server runs in Docker (no binary found)`,
      );
    }
    const container = await NatsContainer.start(docker.fallback, {
      config: renderNatsConfig({
        listen: `0.0.0.0:${CONTAINER_CLIENT_PORT}`,
        serverName: resolved.serverName,
        http: resolved.monitor ? `0.0.0.0:${CONTAINER_MONITOR_PORT}` : undefined,
        jetstreamStoreDir: resolved.jetstream ? CONTAINER_STORE_DIR : undefined,
        debug: resolved.debug,
        extra: resolved.config,
      }),
      port: resolved.port,
      monitor: resolved.monitor,
      startTimeout: resolved.startTimeout,
    });
    return new NatsServer(
      resolved,
      CONTAINER_STORE_DIR,
      false,
      { kind: "container", container, up: true },
      container.port,
    );
  }

  static async #startProcess(options: ResolvedNatsServerOptions, bin: string): Promise<NatsServer> {
    const workDir = await tempDir("nats-server");
    const ownsStore = options.storeDir === undefined;
    const storeDir = options.storeDir ?? (await tempDir("nats-store"));
    try {
      const runtime = await NatsServer.#launch(options, bin, workDir, storeDir, options.port, undefined);
      return new NatsServer(options, storeDir, ownsStore, runtime.runtime, runtime.port);
    } catch (err) {
      await rm(workDir, { recursive: true, force: true });
      if (ownsStore) await rm(storeDir, { recursive: true, force: true });
      throw err;
    }
  }

  /** Writes the config for the given ports (-1: pick one) and runs the binary until it is ready. */
  static async #launch(
    options: ResolvedNatsServerOptions,
    bin: string,
    workDir: string,
    storeDir: string,
    port: number,
    monitorPort: number | undefined,
  ): Promise<{ runtime: ProcessRuntime; port: number }> {
    await mkdir(workDir, { recursive: true });
    const configPath = join(workDir, "nats-server.conf");
    const config = renderNatsConfig({
      listen: `127.0.0.1:${port}`,
      portsFileDir: workDir,
      serverName: options.serverName,
      http: options.monitor ? `127.0.0.1:${monitorPort ?? -1}` : undefined,
      jetstreamStoreDir: options.jetstream ? storeDir : undefined,
      cluster: options.cluster && {
        name: options.cluster.name,
        listen: `127.0.0.1:${options.cluster.port}`,
        routes: options.cluster.routes,
      },
      debug: options.debug,
      extra: options.config,
    });
    await writeFile(configPath, config);
    const { process: proc, ports } = await NatsProcess.launch({
      bin,
      configPath,
      config,
      portsFileDir: workDir,
      startTimeout: options.startTimeout,
      logPrefix: options.debug
        ? `nats-server${options.serverName ? ` ${options.serverName}` : ""}`
        : undefined,
    });
    return {
      runtime: { kind: "process", bin, workDir, process: proc, monitorPort: ports.monitorPort },
      port: ports.port,
    };
  }

  /** Host the server listens on: 127.0.0.1, or the Docker host in the Docker fallback. */
  get host(): string {
    return this.#runtime.kind === "container" ? this.#runtime.container.host : "127.0.0.1";
  }

  /** Client port; the same after `restart()`. */
  get port(): number {
    return this.#port;
  }

  /** Client URL, `nats://127.0.0.1:PORT`. */
  get url(): string {
    return `nats://${this.host}:${this.#port}`;
  }

  /** JetStream store directory (a path inside the container in the Docker fallback). */
  get storeDir(): string {
    return this.#storeDir;
  }

  /** Process id of the running server; changes on `restart()`; undefined in the Docker fallback. */
  get pid(): number | undefined {
    return this.#runtime.kind === "process" ? this.#runtime.process.pid : undefined;
  }

  /** `server_name`, when one was set. */
  get serverName(): string | undefined {
    return this.#options.serverName;
  }

  /** Base URL of the HTTP monitoring endpoint (`http://127.0.0.1:PORT`), when started with `monitor`. */
  get monitorUrl(): string | undefined {
    const port =
      this.#runtime.kind === "process" ? this.#runtime.monitorPort : this.#runtime.container.monitorPort;
    return port === undefined ? undefined : `http://${this.host}:${port}`;
  }

  /** Whether the server process is running (false after `stop()`, `kill()` or a crash). */
  get running(): boolean {
    return this.#runtime.kind === "process" ? this.#runtime.process.running : this.#runtime.up;
  }

  /**
   * Stops the server cleanly (SIGTERM; SIGKILL after `stopTimeout`) and removes its temp files,
   * including the JetStream store unless `keepStore` is set or the store dir was given by the caller.
   * Safe to call more than once, and after `kill()`.
   */
  async stop(options: NatsServerStopOptions = {}): Promise<void> {
    const runtime = this.#runtime;
    const wasStopped = this.#stopped;
    this.#stopped = true;
    if (runtime.kind === "container") {
      runtime.up = false;
      if (!wasStopped) await runtime.container.stop(this.#options.stopTimeout);
      return;
    }
    await runtime.process.terminate(this.#options.stopTimeout);
    await rm(runtime.workDir, { recursive: true, force: true });
    if (this.#ownsStore && !options.keepStore) await rm(this.#storeDir, { recursive: true, force: true });
  }

  /**
   * Stops the server cleanly (if it runs) and starts it again on the same ports with the same
   * JetStream store; resolves when it accepts connections again. Also recovers a server after `kill()`.
   */
  async restart(): Promise<void> {
    const runtime = this.#runtime;
    if (runtime.kind === "container") {
      if (this.#stopped)
        throw invalid("NatsServer.restart(): the container was removed by stop(); start a new server");
      await runtime.container.restart(this.#options.stopTimeout, this.#options.startTimeout);
      runtime.up = true;
      return;
    }
    await runtime.process.terminate(this.#options.stopTimeout);
    const next = await NatsServer.#launch(
      this.#options,
      runtime.bin,
      runtime.workDir,
      this.#storeDir,
      this.#port,
      runtime.monitorPort,
    );
    this.#runtime = next.runtime;
    this.#stopped = false;
  }

  /**
   * Kills the server with SIGKILL, as in a crash (nothing is flushed), and resolves when it is gone.
   * The store and config stay: `restart()` brings the server back, `stop()` cleans up.
   */
  async kill(): Promise<void> {
    const runtime = this.#runtime;
    if (runtime.kind === "container") {
      runtime.up = false;
      await runtime.container.kill();
    } else {
      await runtime.process.kill();
    }
  }

  /** Same as `stop()`, for `await using`. */
  async [Symbol.asyncDispose](): Promise<void> {
    await this.stop();
  }
}
