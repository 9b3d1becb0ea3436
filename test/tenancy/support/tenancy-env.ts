// Test support for the tenancy suite: a nats-server running the users that
// deploy/scripts/add-org.mjs generates, the topology created by the admin user (as
// `station-coding init --org <org>` does), and connections, dispatchers and workers under each
// org's own users.
import { execFile } from "node:child_process";
import { readFile, rm } from "node:fs/promises";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";
import { pino } from "pino";
import { PermissionViolationError, connect } from "@nats-io/transport-node";
import type { NatsConnection } from "@nats-io/transport-node";
import { codingNames, ensureTaskConsumer, ensureTopology } from "@station-coding/protocol";
import { NatsServer, tempDir } from "@station-coding/testkit";
import { CodingDispatcher } from "@station-coding/dispatcher";
import type { DispatcherOptions } from "@station-coding/dispatcher";
import { CodingWorker } from "@station-coding/worker";
import type { WorkerOptions } from "@station-coding/worker";
import { ScriptedDriver } from "../../../packages/worker/test/support/harness.js";

const run = promisify(execFile);

/** The add-org script under test. */
export const ADD_ORG_SCRIPT = fileURLToPath(new URL("../../../deploy/scripts/add-org.mjs", import.meta.url));

/** The main tenancy nats-server configuration (includes the generated auth.conf). */
export const TENANCY_SERVER_CONF = fileURLToPath(
  new URL("../../../deploy/nats/tenancy/nats-server.conf", import.meta.url),
);

/** A user the script created. */
export interface CreatedUser {
  role: "admin" | "dispatcher" | "worker";
  user: string;
  password: string;
}

/** What `add-org.mjs --json` prints. */
export interface AddOrgOutput {
  file: string;
  orgs: string[];
  users: CreatedUser[];
  commands: Record<string, string>;
}

/** Runs `node deploy/scripts/add-org.mjs <args> --json` and returns its output. */
export async function addOrg(args: string[], env: NodeJS.ProcessEnv = {}): Promise<AddOrgOutput> {
  const { stdout } = await run(process.execPath, [ADD_ORG_SCRIPT, ...args, "--json"], {
    env: { ...process.env, ...env },
  });
  return JSON.parse(stdout) as AddOrgOutput;
}

/** Options of {@link startTenancy}. */
export interface TenancyOptions {
  /** Orgs added with the script, each with its dispatcher and worker users. */
  orgs: string[];
  /** Shared worker users: user name -> orgs served. */
  sharedWorkers?: Record<string, string[]>;
}

/** A server with the tenancy users and every org's topology. */
export interface TenancyEnv {
  server: NatsServer;
  /** Admin connection (every right). */
  admin: NatsConnection;
  /** The generated users file. */
  authFile: string;
  /** Password of each generated user. */
  passwords: Map<string, string>;
  /** Root of the workers' workspaces. */
  workspaceDir: string;
  /** Worker and dispatcher log lines, for failure messages. */
  logs: string[];
  /** Connects as `user` (closed by `close`). */
  connectAs(user: string, inboxPrefix?: string): Promise<NatsConnection>;
  /** A dispatcher of `org` under `user` (default `<org>-dispatcher`), without topology rights. */
  dispatcher(
    org: string,
    options?: { user?: string } & Partial<DispatcherOptions>,
  ): Promise<CodingDispatcher>;
  /** A worker under `user` serving `orgs` with short test timings. */
  worker(user: string, orgs: string[], options?: Partial<WorkerOptions>): Promise<CodingWorker>;
  close(): Promise<void>;
}

/**
 * Generates the users with add-org.mjs, starts nats-server with them, and creates every org's
 * streams, buckets, object store and task consumer as the admin user.
 */
export async function startTenancy(options: TenancyOptions): Promise<TenancyEnv> {
  const dir = await tempDir("tenancy");
  const authFile = join(dir, "auth.conf");
  const passwords = new Map<string, string>();
  for (const org of options.orgs) {
    for (const u of (await addOrg([org, "--file", authFile])).users) passwords.set(u.user, u.password);
  }
  for (const [user, orgs] of Object.entries(options.sharedWorkers ?? {})) {
    const out = await addOrg(["--shared-worker", user, "--orgs", orgs.join(","), "--file", authFile]);
    for (const u of out.users) passwords.set(u.user, u.password);
  }
  const server = await NatsServer.start({ config: await readFile(authFile, "utf8") });
  const connections: NatsConnection[] = [];
  const dispatchers: CodingDispatcher[] = [];
  const workers: CodingWorker[] = [];
  const logs: string[] = [];
  const workspaceDir = await tempDir("tenancy-ws");
  const password = (user: string): string => {
    const value = passwords.get(user);
    if (value === undefined) throw new Error(`no generated user ${user}`);
    return value;
  };
  const admin = await connect({
    servers: server.url,
    user: "station-admin",
    pass: password("station-admin"),
  });
  connections.push(admin);
  for (const org of options.orgs) {
    // What `station-coding init --org <org>` does with the admin's credentials.
    const names = codingNames({ org });
    await ensureTopology(admin, names);
    await ensureTaskConsumer(admin, names);
  }
  const logger = (name: string) =>
    pino({ level: "debug", name }, { write: (line: string) => void logs.push(line) });

  const env: TenancyEnv = {
    server,
    admin,
    authFile,
    passwords,
    workspaceDir,
    logs,
    async connectAs(user, inboxPrefix) {
      const nc = await connect({
        servers: server.url,
        user,
        pass: password(user),
        ...(inboxPrefix !== undefined ? { inboxPrefix } : {}),
      });
      connections.push(nc);
      return nc;
    },
    async dispatcher(org, { user = `${org}-dispatcher`, ...rest } = {}) {
      const dispatcher = await CodingDispatcher.connect({
        servers: server.url,
        org,
        user,
        pass: password(user),
        ensureTopology: false,
        requestTimeout: "5s",
        logger: logger(`dispatcher ${user}`),
        ...rest,
      });
      dispatchers.push(dispatcher);
      return dispatcher;
    },
    async worker(user, orgs, overrides = {}) {
      const worker = await CodingWorker.start({
        driver: new ScriptedDriver(),
        servers: server.url,
        user,
        pass: password(user),
        orgs,
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
    async close() {
      await Promise.all(workers.map((w) => w.stop().catch(() => undefined)));
      await Promise.all(dispatchers.map((d) => d.close().catch(() => undefined)));
      await Promise.all(connections.map((nc) => nc.close().catch(() => undefined)));
      await server.stop();
      await rm(dir, { recursive: true, force: true });
      await rm(workspaceDir, { recursive: true, force: true });
    },
  };
  return env;
}

/** The permission violation behind `err` (itself or its cause), or undefined. */
export function violationOf(err: unknown): PermissionViolationError | undefined {
  if (err instanceof PermissionViolationError) return err;
  if (err instanceof Error && err.cause instanceof PermissionViolationError) return err.cause;
  return undefined;
}

/**
 * Awaits `work`, which must fail with a permission violation within `within` ms, and returns the
 * violation (its `operation` and `subject` say what the server refused).
 */
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
  if (!violation) {
    throw new Error(`expected a permission violation, got ${String(outcome.err)}`, { cause: outcome.err });
  }
  if (elapsed > within) throw new Error(`the permission violation took ${elapsed}ms (over ${within}ms)`);
  return violation;
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
