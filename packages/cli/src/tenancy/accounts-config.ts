import { codingNames } from "@station-coding/protocol";
import type { Grant, OrgRole } from "./permissions.js";
import { ORG_ROLES, ROLE_PURPOSE, rolePermissions } from "./permissions.js";

/** Per-org NATS account limits, as the org tool's flags name them. */
export interface OrgLimits {
  /** JetStream file storage, bytes. */
  maxStorage: number;
  /** JetStream memory storage, bytes. */
  maxMemory: number;
  maxStreams: number;
  maxConsumers: number;
  maxConnections: number;
}

/** Limits of a new org unless flags say otherwise. */
export const DEFAULT_LIMITS: OrgLimits = {
  maxStorage: 10 * 1024 ** 3,
  maxMemory: 256 * 1024 ** 2,
  maxStreams: 32,
  maxConsumers: 1000,
  maxConnections: 1000,
};

/** One org as the tenancy state records it: its limits and its users' public keys. */
export interface OrgRecord {
  limits: OrgLimits;
  users: Record<OrgRole, string>;
  createdAt: string;
}

/** The tenancy state: every org and the operator account's user. */
export interface TenancyState {
  version: 1;
  /** Server URL written into the generated client configs. */
  natsUrl?: string;
  operator: { user: string };
  orgs: Record<string, OrgRecord>;
}

/** Name of the NATS account of an org. The `ORG_` prefix keeps it apart from the operator account. */
export function accountName(org: string): string {
  return `ORG_${org}`;
}

/** Name of the operator's account, which reads every org's status through imports. */
export const OPERATOR_ACCOUNT = "STATION";

/** JetStream API prefix under which the operator account reaches an org's imported API subjects. */
export function operatorApiPrefix(org: string): string {
  return `$JS.${org}.API`;
}

/** Reply prefix of a worker connection serving one org (the worker package computes the same). */
export function orgWorkerInbox(org: string): string {
  return `_INBOX_worker+${org}`;
}

/**
 * The read-only JetStream API subjects an org exports to the operator account: enough for
 * `station-coding status` (queue depth, consumer counters, worker presence, dead-letter count)
 * and the account's usage and limits. Nothing that creates, changes, deletes or reads content.
 */
export function operatorExports(org: string): string[] {
  const names = codingNames({ org });
  const workers = `KV_${names.kv.workers}`;
  return [
    "$JS.API.INFO",
    `$JS.API.STREAM.INFO.${names.streams.tasks}`,
    `$JS.API.STREAM.INFO.${names.streams.dlq}`,
    `$JS.API.CONSUMER.INFO.${names.streams.tasks}.${names.consumer}`,
    `$JS.API.STREAM.INFO.${workers}`,
    `$JS.API.STREAM.MSG.GET.${workers}`,
    `$JS.API.DIRECT.GET.${workers}.>`,
  ];
}

const q = (value: string) => JSON.stringify(value);

function grants(kind: "publish" | "subscribe", list: Grant[], indent: string): string[] {
  const out = [`${indent}${kind}: {`, `${indent}  allow: [`];
  for (const grant of list) {
    out.push(`${indent}    # ${grant.why}`);
    for (const subject of grant.subjects) out.push(`${indent}    ${q(subject)}`);
  }
  out.push(`${indent}  ]`, `${indent}}`);
  return out;
}

function orgAccount(org: string, record: OrgRecord): string[] {
  const names = codingNames({ org });
  const l = record.limits;
  const out = [
    `  # org ${org} (added ${record.createdAt})`,
    `  ${accountName(org)}: {`,
    `    jetstream: { max_file: ${l.maxStorage}, max_mem: ${l.maxMemory}, max_streams: ${l.maxStreams}, max_consumers: ${l.maxConsumers} }`,
    `    limits: { max_connections: ${l.maxConnections} }`,
    "    users: [",
  ];
  for (const role of ORG_ROLES) {
    const permissions = rolePermissions(role, names, orgWorkerInbox(org));
    out.push(`      # ${org} ${role}: ${ROLE_PURPOSE[role]}`);
    out.push(`      { nkey: ${q(record.users[role])}`);
    if (permissions) {
      out.push("        permissions: {");
      out.push(...grants("publish", permissions.publish, "          "));
      out.push(...grants("subscribe", permissions.subscribe, "          "));
      out.push("        }");
    }
    out.push("      }");
  }
  out.push("    ]");
  out.push(`    # read-only JetStream API subjects for the operator account (status --all-orgs)`);
  out.push("    exports: [");
  for (const subject of operatorExports(org)) {
    out.push(`      { service: ${q(subject)}, accounts: [${OPERATOR_ACCOUNT}] }`);
  }
  out.push("    ]", "  }");
  return out;
}

function operatorAccount(state: TenancyState): string[] {
  const orgs = Object.keys(state.orgs).sort();
  const out = [
    "  # The operator: reads every org's status (station-coding status --all-orgs) through the",
    "  # read-only imports below, each under the org's own API prefix; no JetStream of its own.",
    `  ${OPERATOR_ACCOUNT}: {`,
    "    users: [",
    `      { nkey: ${q(state.operator.user)}`,
    "        permissions: {",
    orgs.length > 0
      ? `          publish: { allow: [${orgs.map((org) => q(`${operatorApiPrefix(org)}.>`)).join(", ")}] }`
      : `          publish: { deny: [">"] }`,
    `          subscribe: { allow: ["_INBOX.>"] }`,
    "        }",
    "      }",
    "    ]",
    "    imports: [",
  ];
  for (const org of orgs) {
    for (const subject of operatorExports(org)) {
      const local = subject.replace(/^\$JS\.API/, operatorApiPrefix(org));
      out.push(
        `      { service: { account: ${accountName(org)}, subject: ${q(subject)} }, to: ${q(local)} }`,
      );
    }
  }
  out.push("    ]", "  }");
  return out;
}

/** The accounts include (`accounts.conf`) for the tenancy state: no secrets, public keys only. */
export function renderAccountsConfig(state: TenancyState): string {
  const lines = [
    "# station-coding tenancy accounts, generated by `station-coding org` from tenancy.json.",
    "# Do not edit: change orgs and limits with `station-coding org add|rm|limits`, then reload",
    "# nats-server (nats-server --signal reload, or SIGHUP). One NATS account per org; users",
    "# authenticate with nkeys (public keys here, seeds in the creds directory).",
    "accounts {",
    ...operatorAccount(state),
  ];
  for (const org of Object.keys(state.orgs).sort()) {
    const record = state.orgs[org];
    if (record) lines.push(...orgAccount(org, record));
  }
  lines.push("}");
  return `${lines.join("\n")}\n`;
}

/** Environment variables holding the single-tenant users' passwords (read by nats-server). */
export const SINGLE_TENANT_PASSWORD_VARS = {
  admin: "STATION_NATS_ADMIN_PASSWORD",
  worker: "STATION_NATS_WORKER_PASSWORD",
  client: "STATION_NATS_CLIENT_PASSWORD",
} as const;

/**
 * The users file for the single-tenant server (deploy/nats/users.conf): `admin` (everything),
 * `worker` (the worker role: the only one that may publish events and results) and `client`
 * (the dispatcher role: Station, the CLI), with passwords from the server's environment.
 */
export function renderSingleTenantUsers(): string {
  const names = codingNames({});
  const lines = [
    "# station-coding single-tenant NATS users, for deploy/nats/nats.conf (`include ./users.conf`).",
    "# Generated from the org tool's role permissions by `npm run nats-users`: do not edit by hand.",
    "# Passwords come from nats-server's environment; nats-server refuses to start without them.",
    "authorization {",
    "  users: [",
    `    # admin: everything (station-coding init, secrets, inspection)`,
    `    { user: admin, password: $${SINGLE_TENANT_PASSWORD_VARS.admin} }`,
  ];
  const roles: [string, OrgRole, string][] = [
    ["worker", "worker", SINGLE_TENANT_PASSWORD_VARS.worker],
    ["client", "dispatcher", SINGLE_TENANT_PASSWORD_VARS.client],
  ];
  for (const [user, role, variable] of roles) {
    const permissions = rolePermissions(role, names, names.inboxPrefix);
    if (!permissions) continue;
    lines.push(`    # ${user}: ${ROLE_PURPOSE[role]}`);
    lines.push(`    { user: ${user}, password: $${variable}`);
    lines.push("      permissions: {");
    lines.push(...grants("publish", permissions.publish, "        "));
    lines.push(...grants("subscribe", permissions.subscribe, "        "));
    lines.push("      }", "    }");
  }
  lines.push("  ]", "}");
  return `${lines.join("\n")}\n`;
}
