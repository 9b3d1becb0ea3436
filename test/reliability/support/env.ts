// The environment of one scenario: a nats-server (or a cluster), the topology, a wiretap on `>`,
// workers in this process or in child processes, and the secret check over everything they left.
import { spawn } from "node:child_process";
import type { ChildProcess } from "node:child_process";
import { readFileSync } from "node:fs";
import { rm } from "node:fs/promises";
import { fileURLToPath } from "node:url";
import { Objm } from "@nats-io/obj";
import { connect } from "@nats-io/transport-node";
import type { NatsConnection } from "@nats-io/transport-node";
import type { CodingNames, TopologyOptions } from "@station-coding/protocol";
import { TaskLookups, codingNames, ensureTopology } from "@station-coding/protocol";
import { NatsServer, tempDir, waitFor } from "@station-coding/testkit";
import { CodingWorker } from "@station-coding/worker";
import type { AgentDriver, WorkerOptions } from "@station-coding/worker";
import { ScriptedDriver } from "@station-coding/testkit/worker";
import type { Leak, Wiretap as WiretapType } from "./wiretap.js";
import { Wiretap } from "./wiretap.js";
import type { WatchedSecret } from "./secrets.js";
import { FAKE_API_KEY, findSecrets } from "./secrets.js";

const here = fileURLToPath(new URL(".", import.meta.url));
const tsconfig = fileURLToPath(new URL("../tsconfig.json", import.meta.url));

/** Memory of a child worker, from its own `process.memoryUsage()` after a full GC. */
export interface ChildMemory {
  rss: number;
  heapUsed: number;
}

/** A worker running in a child process (scripted driver), killable at any moment. */
export class ChildWorker {
  workerID = "";
  output = "";
  private memWaiters: ((mem: ChildMemory) => void)[] = [];

  constructor(readonly child: ChildProcess) {
    child.stdout?.on("data", (chunk: Buffer) => this.onOutput(chunk.toString()));
    child.stderr?.on("data", (chunk: Buffer) => (this.output += chunk.toString()));
  }

  /** Whether the process has exited (or was killed). */
  get exited(): boolean {
    return this.child.exitCode !== null || this.child.signalCode !== null;
  }

  get pid(): number {
    return this.child.pid ?? -1;
  }

  /** Resident set size of the process in bytes, read from /proc. */
  rss(): number {
    const status = readFileSync(`/proc/${this.pid}/status`, "utf8");
    const kb = /VmRSS:\s+(\d+)\s+kB/.exec(status)?.[1];
    return Number(kb ?? 0) * 1024;
  }

  /** Asks the process for its memory after a full GC (within 10 s). */
  async memory(): Promise<ChildMemory> {
    const answer = new Promise<ChildMemory>((resolve) => this.memWaiters.push(resolve));
    this.child.kill("SIGUSR2");
    let timer: NodeJS.Timeout | undefined;
    const limit = new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new Error(`no memory report from worker ${this.workerID}`)), 10_000);
    });
    try {
      return await Promise.race([answer, limit]);
    } finally {
      clearTimeout(timer);
    }
  }

  /** SIGKILLs the process and resolves once it is gone. */
  async kill(): Promise<void> {
    if (!this.exited) this.child.kill("SIGKILL");
    await waitFor(() => this.exited, { timeout: 10_000, message: `worker ${this.workerID} to die` });
  }

  private onOutput(text: string): void {
    this.output += text;
    if (!this.workerID) this.workerID = /ready (\S+)/.exec(this.output)?.[1] ?? "";
    for (const match of text.matchAll(/^mem (\{.*\})$/gm)) {
      const mem = JSON.parse(match[1] ?? "{}") as ChildMemory;
      for (const resolve of this.memWaiters.splice(0)) resolve(mem);
    }
  }
}

/** Options of {@link startEnv}. */
export interface EnvOptions {
  /** Server URLs; omit to start a fresh nats-server with a temp file store. */
  servers?: string[];
  /** Extra nats-server config for the server started here. */
  serverConfig?: string;
  topology?: TopologyOptions;
  /** Secrets the wiretap and the final check watch for, besides the workers' API key. */
  secrets?: WatchedSecret[];
}

/** A scenario's world. */
export interface Env {
  /** The server started for the scenario (undefined when `servers` were given). */
  server: NatsServer | undefined;
  servers: string[];
  nc: NatsConnection;
  names: CodingNames;
  lookups: TaskLookups;
  wiretap: WiretapType;
  workspaceDir: string;
  secrets: WatchedSecret[];
  children: ChildWorker[];
  workers: CodingWorker[];
  /** Log lines of in-process workers. */
  logs: string[];
  /** Options shared by every worker of the scenario, with `overrides`. */
  workerOptions(overrides?: Partial<WorkerOptions>): Omit<WorkerOptions, "driver">;
  /** Starts a worker in this process (with the scripted driver unless given another, e.g. OpenCode). */
  startWorker(overrides?: Partial<WorkerOptions>, driver?: AgentDriver): Promise<CodingWorker>;
  /** Starts a worker in a child process and resolves once it runs. */
  spawnWorker(overrides?: Partial<WorkerOptions>): Promise<ChildWorker>;
  /** Secrets found in messages, worker logs and the object store. */
  secretLeaks(): Promise<Leak[]>;
  close(): Promise<void>;
}

/** Creates the topology on the given (or a new) server and starts the wiretap. */
export async function startEnv(options: EnvOptions = {}): Promise<Env> {
  const server = options.servers
    ? undefined
    : await NatsServer.start(options.serverConfig ? { config: options.serverConfig } : {});
  const servers = options.servers ?? [server!.url];
  const nc = await connect({ servers, maxReconnectAttempts: -1, reconnectTimeWait: 100 });
  const names = codingNames();
  await ensureTopology(nc, names, options.topology);
  const secrets: WatchedSecret[] = [
    { name: "ANTHROPIC_API_KEY", value: FAKE_API_KEY },
    ...(options.secrets ?? []),
  ];
  const wiretap = await Wiretap.start(servers, names, secrets);
  const workspaceDir = await tempDir("rel-ws");
  const children: ChildWorker[] = [];
  const workers: CodingWorker[] = [];
  const logs: string[] = [];

  const workerOptions = (overrides: Partial<WorkerOptions> = {}): Omit<WorkerOptions, "driver"> => ({
    servers,
    workspaceDir,
    ackWait: 2_000,
    retryDelay: 100,
    sessionBusyDelay: 100,
    pullExpires: 1_000,
    heartbeatInterval: 1_000,
    shutdownGrace: 5_000,
    abortGrace: 1_000,
    logLevel: "debug",
    topology: options.topology ?? {},
    ...overrides,
  });

  const env: Env = {
    server,
    servers,
    nc,
    names,
    lookups: await TaskLookups.create(nc, names),
    wiretap,
    workspaceDir,
    secrets,
    children,
    workers,
    logs,
    workerOptions,
    async startWorker(overrides = {}, driver: AgentDriver = new ScriptedDriver()) {
      // The same secret in the environment as the child workers get: the worker must scrub it.
      process.env.ANTHROPIC_API_KEY = FAKE_API_KEY;
      const worker = await CodingWorker.start({
        ...workerOptions(overrides),
        logDestination: { write: (line: string) => void logs.push(line) },
        driver,
      });
      workers.push(worker);
      return worker;
    },
    async spawnWorker(overrides = {}) {
      const { logDestination: _drop, ...rest } = workerOptions(overrides);
      const child = spawn(
        process.execPath,
        ["--expose-gc", "--import", "tsx", `${here}/worker-child.ts`, JSON.stringify(rest)],
        {
          env: { ...process.env, TSX_TSCONFIG_PATH: tsconfig, ANTHROPIC_API_KEY: FAKE_API_KEY },
          stdio: ["ignore", "pipe", "pipe"],
        },
      );
      const worker = new ChildWorker(child);
      children.push(worker);
      await waitFor(() => worker.workerID !== "" || worker.exited, {
        timeout: 30_000,
        message: "child worker to start",
      });
      if (worker.exited) throw new Error(`child worker exited early:\n${worker.output}`);
      return worker;
    },
    async secretLeaks() {
      const leaks = [...wiretap.leaks];
      for (const child of children) {
        for (const secret of findSecrets(child.output, secrets)) {
          leaks.push({ secret, where: `log of worker ${child.workerID || child.pid}` });
        }
      }
      for (const secret of findSecrets(logs.join(""), secrets)) {
        leaks.push({ secret, where: "log of an in-process worker" });
      }
      // In a cluster whose node just came back, the object store's stream may still be electing a
      // leader: retry the scan until it answers.
      const objects = await waitFor(
        async () => {
          const store = await new Objm(nc).open(names.objectStore);
          const found: { name: string; data: Uint8Array }[] = [];
          for (const info of await store.list()) {
            found.push({ name: info.name, data: (await store.getBlob(info.name)) ?? new Uint8Array() });
          }
          return found;
        },
        { timeout: 60_000, interval: 500, message: "the object store to answer the secrets scan" },
      );
      for (const { name, data } of objects) {
        for (const secret of findSecrets(data, secrets)) leaks.push({ secret, where: `object ${name}` });
      }
      return leaks;
    },
    async close() {
      await Promise.all(children.map((c) => c.kill().catch(() => undefined)));
      await Promise.all(workers.map((w) => w.stop().catch(() => undefined)));
      await wiretap.close();
      await nc.close().catch(() => undefined);
      await server?.stop();
      await rm(workspaceDir, { recursive: true, force: true });
    },
  };
  return env;
}
