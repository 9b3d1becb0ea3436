import { chmod, mkdir, readFile, rename, rm, writeFile } from "node:fs/promises";
import { dirname, join, resolve } from "node:path";
import { createUser } from "@nats-io/nkeys";
import { stringify } from "yaml";
import { ErrorCodes, StationError, validateName } from "@station-coding/protocol";
import type { OrgLimits, OrgRecord, TenancyState } from "./accounts-config.js";
import { DEFAULT_LIMITS, renderAccountsConfig } from "./accounts-config.js";
import type { OrgRole } from "./permissions.js";
import { ORG_ROLES } from "./permissions.js";

/** File names inside a tenancy directory. */
export const TENANCY_FILES = {
  /** The shipped server config, which includes the accounts file. */
  server: "nats-server.conf",
  accounts: "accounts.conf",
  state: "tenancy.json",
  creds: "creds",
} as const;

/** A credentials file written for a user, and the client config next to it. */
export interface WrittenUser {
  role: OrgRole | "operator";
  /** Public key (what the server config holds). */
  publicKey: string;
  /** The nkey seed file (mode 0600). */
  credsFile: string;
  /** A station.yaml for this user (`station-coding --config <file> …`). */
  configFile: string;
  /** The seed itself: only printed when asked for (`--show-credentials`). */
  seed: string;
}

/**
 * The tenancy directory: `tenancy.json` (the state: orgs, limits, public keys), `accounts.conf`
 * (generated from it, included by `nats-server.conf`) and `creds/` (nkey seeds, mode 0600, and a
 * station.yaml per user). Writes are atomic (temp file and rename).
 */
export class TenancyStore {
  constructor(readonly dir: string) {}

  /** Path of a file in the directory. */
  path(name: string): string {
    return resolve(this.dir, name);
  }

  /** Credentials directory of an org (or the operator's, for undefined). */
  credsDir(org?: string): string {
    return org === undefined ? this.path(TENANCY_FILES.creds) : join(this.path(TENANCY_FILES.creds), org);
  }

  /** Seed file of an org's user. */
  credsFile(org: string, role: OrgRole): string {
    return join(this.credsDir(org), `${role}.nk`);
  }

  /** Reads the state; a directory without one has no orgs yet (the operator is created on save). */
  async load(): Promise<TenancyState | undefined> {
    let text: string;
    try {
      text = await readFile(this.path(TENANCY_FILES.state), "utf8");
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === "ENOENT") return undefined;
      throw err;
    }
    try {
      const state = JSON.parse(text) as TenancyState;
      if (state.version !== 1 || typeof state.orgs !== "object") throw new Error("unknown version");
      return state;
    } catch (err) {
      throw new StationError(
        ErrorCodes.InvalidConfig,
        `${this.path(TENANCY_FILES.state)}: not a tenancy state file (${(err as Error).message})`,
      );
    }
  }

  /** The state, creating the operator's user on first use. */
  async loadOrInit(): Promise<{ state: TenancyState; operator?: WrittenUser }> {
    const existing = await this.load();
    if (existing) return { state: existing };
    const operator = await this.writeOperator();
    return { state: { version: 1, operator: { user: operator.publicKey }, orgs: {} }, operator };
  }

  /** Writes the state, the accounts include and every user's client config. */
  async save(state: TenancyState): Promise<void> {
    await mkdir(this.dir, { recursive: true });
    await atomicWrite(this.path(TENANCY_FILES.accounts), renderAccountsConfig(state), 0o644);
    await atomicWrite(this.path(TENANCY_FILES.state), `${JSON.stringify(state, null, 2)}\n`, 0o644);
    await this.writeClientConfigs(state);
  }

  /** Generates an org's users and writes their seeds; returns them (the caller records the keys). */
  async createOrg(
    org: string,
    limits: Partial<OrgLimits>,
  ): Promise<{ record: OrgRecord; users: WrittenUser[] }> {
    validateName("org", org);
    const dir = this.credsDir(org);
    await mkdir(dir, { recursive: true, mode: 0o700 });
    await chmod(dir, 0o700);
    const users: WrittenUser[] = [];
    for (const role of ORG_ROLES) {
      const pair = createUser();
      const seed = new TextDecoder().decode(pair.getSeed());
      const credsFile = this.credsFile(org, role);
      await atomicWrite(credsFile, `${seed}\n`, 0o600);
      users.push({
        role,
        publicKey: pair.getPublicKey(),
        credsFile,
        configFile: join(dir, `${role}.yaml`),
        seed,
      });
    }
    const record: OrgRecord = {
      limits: { ...DEFAULT_LIMITS, ...limits },
      users: Object.fromEntries(users.map((u) => [u.role, u.publicKey])) as Record<OrgRole, string>,
      createdAt: new Date().toISOString(),
    };
    return { record, users };
  }

  /** Removes an org's credentials directory. */
  async removeOrgCreds(org: string): Promise<void> {
    await rm(this.credsDir(validateName("org", org)), { recursive: true, force: true });
  }

  private async writeOperator(): Promise<WrittenUser> {
    const dir = this.credsDir();
    await mkdir(dir, { recursive: true, mode: 0o700 });
    await chmod(dir, 0o700);
    const pair = createUser();
    const seed = new TextDecoder().decode(pair.getSeed());
    const credsFile = join(dir, "operator.nk");
    await atomicWrite(credsFile, `${seed}\n`, 0o600);
    return {
      role: "operator",
      publicKey: pair.getPublicKey(),
      credsFile,
      configFile: join(dir, "operator.yaml"),
      seed,
    };
  }

  /**
   * A station.yaml per user: the org, the credentials file and, for those who wait for results,
   * the org's worker key as the one trusted result signer.
   */
  private async writeClientConfigs(state: TenancyState): Promise<void> {
    const url = state.natsUrl !== undefined ? { url: state.natsUrl } : {};
    const operatorDir = this.credsDir();
    await mkdir(operatorDir, { recursive: true, mode: 0o700 });
    await atomicWrite(
      join(operatorDir, "operator.yaml"),
      header("the operator account (station-coding status --all-orgs)") +
        stringify({
          coding: {
            nats: { ...url, creds_file: join(operatorDir, "operator.nk") },
            orgs: Object.keys(state.orgs).sort(),
          },
        }),
      0o600,
    );
    for (const [org, record] of Object.entries(state.orgs)) {
      for (const role of ORG_ROLES) {
        const signers =
          role === "dispatcher" || role === "viewer" ? { results: { signers: [record.users.worker] } } : {};
        await atomicWrite(
          join(this.credsDir(org), `${role}.yaml`),
          header(`org ${org}, user ${role}`) +
            stringify({
              coding: { org, nats: { ...url, creds_file: this.credsFile(org, role) }, ...signers },
            }),
          0o600,
        );
      }
    }
  }
}

function header(who: string): string {
  return `# station-coding config for ${who}, written by \`station-coding org\`.\n# Use it with: station-coding --config <this file> <command>\n`;
}

/** Writes `text` to `path` through a temp file and a rename, with `mode`. */
async function atomicWrite(path: string, text: string, mode: number): Promise<void> {
  await mkdir(dirname(path), { recursive: true });
  const temp = `${path}.${process.pid}.tmp`;
  await writeFile(temp, text, { mode });
  await chmod(temp, mode);
  await rename(temp, path);
}
