// Test support for the tenancy suite: the shipped tenancy nats-server.conf run by a real
// nats-server, with the accounts that `station-coding org add` generates (one account per org,
// nkey users, limits), each org's topology created by its own admin (as `org add --init` does), and
// connections, dispatchers and workers under each org's own users.
import { execFile, spawn } from "node:child_process";
import type { ChildProcess } from "node:child_process";
import { readFile, readdir, rm, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";
import { pino } from "pino";
import { PermissionViolationError, connect } from "@nats-io/transport-node";
import type { NatsConnection } from "@nats-io/transport-node";
import {
  codingNames,
  credentialsAuthenticator,
  ensureTaskConsumer,
  ensureTopology,
} from "@station-coding/protocol";
import { tempDir, waitFor } from "@station-coding/testkit";
import { CodingDispatcher } from "@station-coding/dispatcher";
import type { DispatcherOptions } from "@station-coding/dispatcher";
import { CodingWorker } from "@station-coding/worker";
import type { WorkerOptions } from "@station-coding/worker";
import { ScriptedDriver } from "@station-coding/testkit/worker";
import { TenancyStore, operatorApiPrefix, orgWorkerInbox } from "@station-coding/cli/internal";
import type { OrgLimits, OrgRole, TenancyState } from "@station-coding/cli/internal";

const run = promisify(execFile);

/** The shipped tenancy server configuration (includes the generated accounts.conf). */
export const TENANCY_SERVER_CONF = fileURLToPath(
  new URL("../../../deploy/nats/tenancy/nats-server.conf", import.meta.url),
);
/** The CLI, run from source. */
export const CLI_MAIN = fileURLToPath(new URL("../../../packages/cli/src/main.ts", import.meta.url));
const TSCONFIG = fileURLToPath(new URL("../../tsconfig.json", import.meta.url));

/** Runs the station-coding CLI from source; resolves with its exit code and output. */
export async function cli(
  args: string[],
  env: NodeJS.ProcessEnv = {},
): Promise<{ code: number; stdout: string; stderr: string }> {
  return run(process.execPath, ["--import", "tsx", CLI_MAIN, ...args], {
    env: { ...process.env, TSX_TSCONFIG_PATH: TSCONFIG, ...env },
    timeout: 60_000,
  }).then(
    ({ stdout, stderr }) => ({ code: 0, stdout, stderr }),
    (err: { code: number; stdout: string; stderr: string }) => ({
      code: err.code,
      stdout: err.stdout,
      stderr: err.stderr,
    }),
  );
}

/** nats-server running the shipped tenancy config from a directory of its own. */
export class ShippedTenancyServer {
  private constructor(
    readonly dir: string,
    readonly url: string,
    readonly monitorUrl: string,
    private readonly child: ChildProcess,
    private readonly logText: () => string,
  ) {}

  /**
   * Copies the shipped nats-server.conf into `dir` (next to the generated accounts.conf it
   * includes) with only the deployment values changed: loopback and free ports, a temp store, the
   * pid file in `dir`. Checks it with `nats-server -t` and starts it.
   */
  static async start(dir: string): Promise<ShippedTenancyServer> {
    const shipped = await readFile(TENANCY_SERVER_CONF, "utf8");
    const config = shipped
      .replace(/^listen: .*$/m, "listen: 127.0.0.1:-1")
      .replace(/^http: .*$/m, "http: 127.0.0.1:-1")
      .replace(/^pid_file: .*$/m, `pid_file: ${JSON.stringify(join(dir, "nats-server.pid"))}`)
      .replace(/^ {2}store_dir: .*$/m, `  store_dir: ${JSON.stringify(join(dir, "jetstream"))}`);
    if (!config.includes("include ./accounts.conf"))
      throw new Error("the shipped config no longer includes ./accounts.conf");
    return ShippedTenancyServer.run(dir, config);
  }

  /** Checks `config` with `nats-server -t`, writes it into `dir` and runs it with `env` added. */
  static async run(dir: string, config: string, env: NodeJS.ProcessEnv = {}): Promise<ShippedTenancyServer> {
    const file = join(dir, "nats-server.conf");
    await writeFile(file, `${config}\nports_file_dir: ${JSON.stringify(dir)}\n`);
    const childEnv = { ...process.env, ...env };
    await run("nats-server", ["-t", "-c", file], { env: childEnv });
    let log = "";
    const child = spawn("nats-server", ["-c", file], { stdio: ["ignore", "pipe", "pipe"], env: childEnv });
    child.stdout?.on("data", (chunk: Buffer) => (log += chunk.toString()));
    child.stderr?.on("data", (chunk: Buffer) => (log += chunk.toString()));
    const ports = await waitFor(
      async () => {
        if (child.exitCode !== null) throw new Error(`nats-server exited ${child.exitCode}:\n${log}`);
        const name = (await readdir(dir)).find((f) => f.endsWith(".ports"));
        return (
          name &&
          (JSON.parse(await readFile(join(dir, name), "utf8")) as { nats: string[]; monitoring?: string[] })
        );
      },
      { timeout: 10_000, message: "nats-server to write its ports file" },
    );
    const url = ports.nats[0];
    if (url === undefined) throw new Error(`no client URL:\n${log}`);
    return new ShippedTenancyServer(dir, url, ports.monitoring?.[0] ?? "", child, () => log);
  }

  /** Process id (the same before and after a reload). */
  get pid(): number {
    return this.child.pid ?? -1;
  }

  /** Whether the process still runs. */
  get running(): boolean {
    return this.child.exitCode === null && this.child.signalCode === null;
  }

  /** Everything the server logged. */
  get log(): string {
    return this.logText();
  }

  async stop(): Promise<void> {
    if (!this.running) return;
    const exited = new Promise((resolve) => this.child.once("exit", resolve));
    this.child.kill("SIGTERM");
    await exited;
  }
}

/** Options of {@link startTenancy}. */
export interface TenancyOptions {
  orgs: string[];
  /** Limits per org (the rest default). */
  limits?: Record<string, Partial<OrgLimits>>;
}

/** A running multi-tenant deployment: the shipped config, the generated accounts, every org initialised. */
export interface TenancyEnv {
  server: ShippedTenancyServer;
  store: TenancyStore;
  state: TenancyState;
  /** Root of the workers' workspaces. */
  workspaceDir: string;
  /** Worker and dispatcher log lines, for assertions and failure messages. */
  logs: string[];
  /** Credentials file of an org's user. */
  credsFile(org: string, role: OrgRole): string;
  /** Public key of an org's user (the worker's signs results). */
  publicKey(org: string, role: OrgRole): string;
  /** Connects as an org's user, with the reply prefix its role uses (closed by `close`). */
  connectAs(org: string, role: OrgRole, inboxPrefix?: string): Promise<NatsConnection>;
  /** Connects as the operator (STATION account). */
  connectOperator(): Promise<NatsConnection>;
  /** A dispatcher of `org` as its dispatcher user, trusting the org's worker key. */
  dispatcher(
    org: string,
    options?: { role?: OrgRole } & Partial<DispatcherOptions>,
  ): Promise<CodingDispatcher>;
  /** A worker serving `orgs`, each over its own connection with the org's worker credentials. */
  worker(orgs: string[], options?: Partial<WorkerOptions>): Promise<CodingWorker>;
  /** Adds an org as `station-coding org add` does (files only; reload with `reload()`). */
  addOrg(org: string, limits?: Partial<OrgLimits>): Promise<void>;
  /** Sends the server SIGHUP and waits until `org`'s admin can connect (when given). */
  reload(org?: string): Promise<void>;
  /** Creates an org's topology as its admin (what `org add --init` does). */
  init(org: string): Promise<void>;
  close(): Promise<void>;
}

/** The reply prefix each role connects with. */
export function inboxOf(org: string, role: OrgRole): string {
  return role === "worker"
    ? orgWorkerInbox(org)
    : role === "admin"
      ? "_INBOX"
      : codingNames({ org }).inboxPrefix;
}

/** Generates the accounts with the org tool's store, starts the shipped config and initialises every org. */
export async function startTenancy(options: TenancyOptions): Promise<TenancyEnv> {
  const dir = await tempDir("tenancy");
  const store = new TenancyStore(dir);
  let { state } = await store.loadOrInit();
  for (const org of options.orgs) {
    state.orgs[org] = (await store.createOrg(org, options.limits?.[org] ?? {})).record;
  }
  await store.save(state);
  const server = await ShippedTenancyServer.start(dir);
  const connections: NatsConnection[] = [];
  const dispatchers: CodingDispatcher[] = [];
  const workers: CodingWorker[] = [];
  const logs: string[] = [];
  const workspaceDir = await tempDir("tenancy-ws");
  const logger = (name: string) =>
    pino({ level: "debug", name }, { write: (line: string) => void logs.push(line) });
  const credsFile = (org: string, role: OrgRole) => store.credsFile(org, role);
  const authenticator = async (file: string) => credentialsAuthenticator(await readFile(file), file);

  const env: TenancyEnv = {
    server,
    store,
    get state() {
      return state;
    },
    workspaceDir,
    logs,
    credsFile,
    publicKey(org, role) {
      const key = state.orgs[org]?.users[role];
      if (!key) throw new Error(`no org ${org}`);
      return key;
    },
    async connectAs(org, role, inboxPrefix = inboxOf(org, role)) {
      const nc = await connect({
        servers: server.url,
        authenticator: await authenticator(credsFile(org, role)),
        inboxPrefix,
      });
      connections.push(nc);
      return nc;
    },
    async connectOperator() {
      const nc = await connect({
        servers: server.url,
        authenticator: await authenticator(join(store.credsDir(), "operator.nk")),
      });
      connections.push(nc);
      return nc;
    },
    async dispatcher(org, { role = "dispatcher", ...rest } = {}) {
      const dispatcher = await CodingDispatcher.connect({
        servers: server.url,
        org,
        creds: credsFile(org, role),
        ensureTopology: false,
        trustedSigners: [env.publicKey(org, "worker")],
        requestTimeout: "5s",
        logger: logger(`dispatcher ${org} ${role}`),
        ...rest,
      });
      dispatchers.push(dispatcher);
      return dispatcher;
    },
    async worker(orgs, overrides = {}) {
      const worker = await CodingWorker.start({
        driver: new ScriptedDriver(),
        servers: server.url,
        orgs,
        orgCreds: Object.fromEntries(orgs.map((org) => [org, credsFile(org, "worker")])),
        workspaceDir,
        ackWait: 5_000,
        retryDelay: 100,
        sessionBusyDelay: 100,
        pullExpires: 1_000,
        heartbeatInterval: 500,
        shutdownGrace: 5_000,
        abortGrace: 1_000,
        logLevel: "debug",
        logDestination: { write: (line: string) => void logs.push(line) },
        ...overrides,
      });
      workers.push(worker);
      return worker;
    },
    async addOrg(org, limits = {}) {
      state = (await store.load()) ?? state;
      state.orgs[org] = (await store.createOrg(org, limits)).record;
      await store.save(state);
    },
    async reload(org) {
      process.kill(server.pid, "SIGHUP");
      if (org === undefined) return;
      const auth = await authenticator(credsFile(org, "admin"));
      await waitFor(
        () =>
          connect({ servers: server.url, authenticator: auth, maxReconnectAttempts: 0, timeout: 1_000 }).then(
            async (nc) => {
              await nc.close();
              return true;
            },
            () => false,
          ),
        { timeout: 10_000, message: `the reloaded server to know org ${org}` },
      );
    },
    async init(org) {
      const nc = await env.connectAs(org, "admin");
      const names = codingNames({ org });
      await ensureTopology(nc, names);
      await ensureTaskConsumer(nc, names);
    },
    async close() {
      await Promise.all(workers.map((w) => w.stop().catch(() => undefined)));
      await Promise.all(dispatchers.map((d) => d.close().catch(() => undefined)));
      await Promise.all(connections.map((nc) => nc.close().catch(() => undefined)));
      await server.stop();
      await rm(dir, { recursive: true, force: true });
      await rm(workspaceDir, { recursive: true, force: true });
    },
  };
  for (const org of options.orgs) await env.init(org);
  return env;
}

/** JetStream API prefix of an org in the operator account. */
export { operatorApiPrefix };

/** The permission violation behind `err` (itself or its cause), or undefined. */
export function violationOf(err: unknown): PermissionViolationError | undefined {
  if (err instanceof PermissionViolationError) return err;
  if (err instanceof Error && err.cause instanceof PermissionViolationError) return err.cause;
  return undefined;
}

/** Awaits `work`, which must fail with a permission violation within `within` ms; returns it. */
export async function refused(work: Promise<unknown>, within = 3_000): Promise<PermissionViolationError> {
  const started = Date.now();
  const outcome = await work.then(
    (value: unknown) => ({ ok: true as const, value }),
    (err: unknown) => ({ ok: false as const, err }),
  );
  const elapsed = Date.now() - started;
  if (outcome.ok)
    throw new Error(`expected a permission violation, but it succeeded (${String(outcome.value)})`);
  const violation = violationOf(outcome.err);
  if (!violation)
    throw new Error(`expected a permission violation, got ${String(outcome.err)}`, { cause: outcome.err });
  if (elapsed > within) throw new Error(`the permission violation took ${elapsed}ms (over ${within}ms)`);
  return violation;
}

/** Awaits `work`, which must fail (any error); returns the error. */
export async function fails(work: Promise<unknown>): Promise<Error> {
  const outcome = await work.then(
    (value: unknown) => ({ ok: true as const, value }),
    (err: unknown) => ({ ok: false as const, err }),
  );
  if (outcome.ok) throw new Error(`expected a failure, but it succeeded (${String(outcome.value)})`);
  return outcome.err instanceof Error ? outcome.err : new Error(String(outcome.err));
}

/**
 * Subscribes to `subject` and returns the server's refusal. The server answers a SUB before the
 * PONG of the following flush, so once `flush()` resolves the refusal has been handled.
 */
export async function subscribeRefused(
  nc: NatsConnection,
  subject: string,
): Promise<PermissionViolationError> {
  let refusal: unknown;
  let received = 0;
  nc.subscribe(subject, {
    callback: (err) => {
      if (err) refusal = err;
      else received += 1;
    },
  });
  await nc.flush();
  const violation = violationOf(refusal);
  if (!violation)
    throw new Error(`subscribing to ${subject} was not refused (${received} messages received)`);
  return violation;
}
