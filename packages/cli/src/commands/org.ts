import { readFile } from "node:fs/promises";
import { relative } from "node:path";
import type { Command } from "commander";
import { connect } from "@nats-io/transport-node";
import type { NatsConnection } from "@nats-io/transport-node";
import {
  codingNames,
  ensureTaskConsumer,
  ensureTopology,
  natsConnectOptions,
  natsServers,
  withoutUndefined,
} from "@station-coding/protocol";
import type { OrgLimits, TenancyState } from "../tenancy/accounts-config.js";
import { DEFAULT_LIMITS, accountName } from "../tenancy/accounts-config.js";
import { checkServerConfig, reloadServer } from "../tenancy/server-reload.js";
import type { WrittenUser } from "../tenancy/tenancy-store.js";
import { TENANCY_FILES, TenancyStore } from "../tenancy/tenancy-store.js";
import type { CommonFlags, Run } from "../context.js";
import { UsageError, intFlag } from "../context.js";
import { formatBytes } from "../output.js";

interface OrgFlags extends CommonFlags {
  dir?: string;
  maxStorage?: string;
  maxMemory?: string;
  maxStreams?: string;
  maxConsumers?: string;
  maxConnections?: string;
  reload?: boolean;
  pid?: string;
  pidFile?: string;
  init?: boolean;
  showCredentials?: boolean;
}

const DEFAULT_DIR = "deploy/nats/tenancy";

/** Parses a size flag: bytes, or a number with K, M, G or T (powers of 1024). */
export function sizeFlag(flag: string, value: string | undefined): number | undefined {
  if (value === undefined) return undefined;
  const match = /^(\d+(?:\.\d+)?)\s*([KMGT]?)(i?B)?$/i.exec(value.trim());
  if (!match)
    throw new UsageError(`${flag} ${JSON.stringify(value)}: must be a size such as 512M, 10G or 1048576`);
  const power = " KMGT".indexOf((match[2] ?? "").toUpperCase() || " ");
  return Math.floor(Number(match[1]) * 1024 ** power);
}

/** The tenancy directory's store: --dir, else STATION_TENANCY_DIR, else the default. */
function tenancyStore(flags: OrgFlags): TenancyStore {
  return new TenancyStore(flags.dir ?? process.env.STATION_TENANCY_DIR ?? DEFAULT_DIR);
}

/** The store, its state and the record of org `name`; a usage error when there is no such org. */
async function existingOrg(flags: OrgFlags, name: string) {
  const store = tenancyStore(flags);
  const state = await requireState(store);
  const record = state.orgs[name];
  if (!record) throw new UsageError(`org ${name}: no such org in ${shown(store.path(TENANCY_FILES.state))}`);
  return { store, state, record };
}

function limitFlags(flags: OrgFlags): Partial<OrgLimits> {
  return withoutUndefined({
    maxStorage: sizeFlag("--max-storage", flags.maxStorage),
    maxMemory: sizeFlag("--max-memory", flags.maxMemory),
    maxStreams: intFlag("--max-streams", flags.maxStreams),
    maxConsumers: intFlag("--max-consumers", flags.maxConsumers),
    maxConnections: intFlag("--max-connections", flags.maxConnections),
  });
}

function describeLimits(l: OrgLimits): string {
  return (
    `max-storage ${formatBytes(l.maxStorage)}, max-memory ${formatBytes(l.maxMemory)}, ` +
    `max-streams ${l.maxStreams}, max-consumers ${l.maxConsumers}, max-connections ${l.maxConnections}`
  );
}

function withLimitOptions(command: Command): Command {
  return command
    .option(
      "--max-storage <size>",
      `JetStream file storage of the org (default ${formatBytes(DEFAULT_LIMITS.maxStorage)})`,
    )
    .option(
      "--max-memory <size>",
      `JetStream memory storage (default ${formatBytes(DEFAULT_LIMITS.maxMemory)})`,
    )
    .option(
      "--max-streams <n>",
      `streams, KV buckets and object stores (default ${DEFAULT_LIMITS.maxStreams})`,
    )
    .option("--max-consumers <n>", `consumers (default ${DEFAULT_LIMITS.maxConsumers})`)
    .option("--max-connections <n>", `client connections at once (default ${DEFAULT_LIMITS.maxConnections})`);
}

function withReloadOptions(command: Command): Command {
  return command
    .option("--reload", "check the config (nats-server -t) and make nats-server reload it (SIGHUP)")
    .option("--pid <pid>", "nats-server process to reload (default: pid_file of nats-server.conf)")
    .option("--pid-file <file>", "file holding the nats-server process id");
}

/** Checks and reloads the server when asked; returns what was done, for the output. */
async function maybeReload(store: TenancyStore, flags: OrgFlags): Promise<string | undefined> {
  if (!flags.reload) return undefined;
  const config = store.path(TENANCY_FILES.server);
  const checked = await checkServerConfig(config);
  const pid = await reloadServer(
    {
      ...(flags.pid !== undefined ? { pid: intFlag("--pid", flags.pid) } : {}),
      ...(flags.pidFile !== undefined ? { pidFile: flags.pidFile } : {}),
    },
    config,
  );
  return `${checked ? "config checked, " : ""}nats-server${pid !== undefined ? ` (pid ${pid})` : ""} reloading`;
}

/** Connects as an org's admin once the reloaded server knows the account (polls for up to 10 s). */
async function connectAsAdmin(servers: string, credsFile: string): Promise<NatsConnection> {
  const options = natsConnectOptions({
    servers,
    name: "station-coding-org",
    timeout: 2_000,
    maxReconnectAttempts: 0,
    creds: await readFile(credsFile),
    credsLabel: credsFile,
  });
  const deadline = Date.now() + 10_000;
  for (;;) {
    try {
      return await connect(options);
    } catch (err) {
      if (Date.now() > deadline) {
        throw new UsageError(
          `--init: cannot connect to ${servers} as the new org's admin (${(err as Error).message}); was the server reloaded with the new accounts.conf?`,
        );
      }
      await new Promise((resolve) => setTimeout(resolve, 200));
    }
  }
}

function shown(path: string): string {
  const rel = relative(process.cwd(), path);
  return rel.startsWith("..") ? path : rel;
}

function userJson(u: WrittenUser, showSeed: boolean) {
  return {
    role: u.role,
    publicKey: u.publicKey,
    credsFile: u.credsFile,
    configFile: u.configFile,
    ...(showSeed ? { seed: u.seed } : {}),
  };
}

async function requireState(store: TenancyStore): Promise<TenancyState> {
  const state = await store.load();
  if (!state)
    throw new UsageError(`${store.path(TENANCY_FILES.state)}: no orgs yet (station-coding org add <org>)`);
  return state;
}

/** `station-coding org add|rm|ls|limits`: one NATS account per org, in a config include. */
export function registerOrg(program: Command, run: Run): void {
  const org = program
    .command("org")
    .description("manage tenant orgs: one NATS account each, with its users, credentials and limits");
  const dirOption = `tenancy directory: nats-server.conf, the generated accounts.conf, tenancy.json, creds/ (env STATION_TENANCY_DIR, default ${DEFAULT_DIR})`;

  const add = org
    .command("add <org>")
    .description(
      "add an org: its account, limits and users (admin, dispatcher, worker, viewer) with their credentials",
    )
    .option("--dir <dir>", dirOption)
    .option("--init", "after the reload, create the org's streams, buckets and object store as its admin")
    .option(
      "--show-credentials",
      "also print the nkey seeds (they are always written to files with mode 0600)",
    );
  withReloadOptions(withLimitOptions(add)).action((name: string, flags: OrgFlags, cmd: Command) =>
    run(async () => {
      const all = { ...cmd.optsWithGlobals<CommonFlags>(), ...flags };
      const store = tenancyStore(flags);
      codingNames({ org: name });
      if (flags.init && !flags.reload)
        throw new UsageError("--init needs --reload: the server must know the account first");
      const { state, operator } = await store.loadOrInit();
      if (state.orgs[name])
        throw new UsageError(`org ${name} already exists in ${shown(store.path(TENANCY_FILES.state))}`);
      if (all.natsUrl !== undefined) state.natsUrl = all.natsUrl;
      const { record, users } = await store.createOrg(name, limitFlags(flags));
      state.orgs[name] = record;
      await store.save(state);
      const reloaded = await maybeReload(store, flags);
      let initialized: string[] | undefined;
      if (flags.init) {
        const servers = natsServers(all.natsUrl ?? state.natsUrl).join(",");
        const nc = await connectAsAdmin(servers, store.credsFile(name, "admin"));
        try {
          const names = codingNames({ org: name });
          const report = await ensureTopology(nc, names);
          await ensureTaskConsumer(nc, names);
          initialized = [...report.created, ...report.existing];
        } finally {
          await nc.close();
        }
      }
      const showSeed = flags.showCredentials === true;
      if (all.json) {
        process.stdout.write(
          `${JSON.stringify({
            org: name,
            account: accountName(name),
            limits: record.limits,
            accountsFile: store.path(TENANCY_FILES.accounts),
            users: users.map((u) => userJson(u, showSeed)),
            ...(operator ? { operator: userJson(operator, showSeed) } : {}),
            reloaded: reloaded !== undefined,
            initialized: initialized !== undefined,
          })}\n`,
        );
        return;
      }
      const out = [
        `added org ${name} (NATS account ${accountName(name)}) to ${shown(store.path(TENANCY_FILES.accounts))}`,
        `limits: ${describeLimits(record.limits)}`,
        `credentials (nkey seeds, mode 0600) and a station.yaml per user in ${shown(store.credsDir(name))}/:`,
        ...users.map(
          (u) =>
            `  ${u.role.padEnd(10)} ${shown(u.credsFile)}  ${u.publicKey}${showSeed ? `  ${u.seed}` : ""}`,
        ),
      ];
      if (operator) out.push(`operator (status --all-orgs): ${shown(operator.credsFile)}`);
      if (reloaded) out.push(reloaded);
      if (initialized)
        out.push(`topology ready (org ${name}): ${initialized.length} streams, buckets and stores`);
      const cfg = (role: string) => shown(`${store.credsDir(name)}/${role}.yaml`);
      out.push("", "Next:");
      if (!reloaded) out.push("  nats-server --signal reload        # or: station-coding org add … --reload");
      if (!initialized) out.push(`  station-coding --config ${cfg("admin")} init`);
      out.push(
        `  station-coding --config ${cfg("worker")} worker`,
        `  station-coding --config ${cfg("dispatcher")} submit "<prompt>"`,
        `  station-coding --config ${cfg("admin")} secrets set github --from-env GITHUB_TOKEN`,
      );
      process.stdout.write(`${out.join("\n")}\n`);
    }),
  );

  withReloadOptions(
    org
      .command("rm <org>")
      .description("remove an org's account and credentials (its JetStream data stays on the server's disk)")
      .option("--dir <dir>", dirOption),
  ).action((name: string, flags: OrgFlags, cmd: Command) =>
    run(async () => {
      const all = { ...cmd.optsWithGlobals<CommonFlags>(), ...flags };
      const { store, state } = await existingOrg(flags, name);
      delete state.orgs[name];
      await store.save(state);
      await store.removeOrgCreds(name);
      const reloaded = await maybeReload(store, flags);
      if (all.json)
        process.stdout.write(
          `${JSON.stringify({ org: name, removed: true, reloaded: reloaded !== undefined })}\n`,
        );
      else
        process.stdout.write(
          `removed org ${name} (account ${accountName(name)}) and its credentials${reloaded ? `; ${reloaded}` : "; reload nats-server to disconnect its users"}\n`,
        );
    }),
  );

  org
    .command("ls")
    .description("list the orgs with their limits and credentials files")
    .option("--dir <dir>", dirOption)
    .action((flags: OrgFlags, cmd: Command) =>
      run(async () => {
        const all = { ...cmd.optsWithGlobals<CommonFlags>(), ...flags };
        const store = tenancyStore(flags);
        const state = (await store.load()) ?? { orgs: {} };
        for (const [name, record] of Object.entries(state.orgs).sort(([a], [b]) => a.localeCompare(b))) {
          if (all.json) {
            process.stdout.write(
              `${JSON.stringify({ org: name, account: accountName(name), limits: record.limits, users: record.users, credsDir: store.credsDir(name) })}\n`,
            );
          } else {
            process.stdout.write(`${name.padEnd(20)} ${describeLimits(record.limits)}\n`);
          }
        }
      }),
    );

  withReloadOptions(
    withLimitOptions(
      org
        .command("limits <org>")
        .description("show an org's limits, or change them (with --reload, live)")
        .option("--dir <dir>", dirOption),
    ),
  ).action((name: string, flags: OrgFlags, cmd: Command) =>
    run(async () => {
      const all = { ...cmd.optsWithGlobals<CommonFlags>(), ...flags };
      const { store, state, record } = await existingOrg(flags, name);
      const changes = limitFlags(flags);
      let reloaded: string | undefined;
      if (Object.keys(changes).length > 0) {
        record.limits = { ...record.limits, ...changes };
        await store.save(state);
        reloaded = await maybeReload(store, flags);
      }
      if (all.json)
        process.stdout.write(
          `${JSON.stringify({ org: name, limits: record.limits, reloaded: reloaded !== undefined })}\n`,
        );
      else
        process.stdout.write(`${name}: ${describeLimits(record.limits)}${reloaded ? `\n${reloaded}` : ""}\n`);
    }),
  );
}
