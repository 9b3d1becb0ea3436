import { chmod, mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { GitSpec } from "@station-coding/protocol";
import type { SecretRedactor } from "../shared/redact.js";
import { GitError } from "./git-errors.js";

/** Reads a secret from the org's secrets KV bucket; undefined when the key does not exist. */
export type SecretLookup = (key: string, org: string | undefined) => Promise<string | undefined>;

/** Where a worker finds git tokens. */
export interface GitCredentialOptions {
  /** Environment variable holding the token for single-tenant tasks (and all orgs when `tokenEnvByOrg` is unset). */
  tokenEnv?: string;
  /** Environment variable per org, e.g. `{ acme: "ACME_GIT_TOKEN" }`; orgs not listed get no worker token. */
  tokenEnvByOrg?: Record<string, string>;
  /** User name git sends with the token over https. @default "x-access-token" */
  username?: string;
  /** Reads `workspace.git.tokenFromKV` keys; without it such tasks fail. */
  getSecret?: SecretLookup;
  /** Name of the secrets bucket of an org, for messages. @default `coding-secrets[-<org>]` */
  secretsBucket?: (org: string | undefined) => string;
  /** Scrubs every token found from events, errors and logs. */
  redactor?: SecretRedactor;
  /** Environment read for `tokenEnv`. @default process.env */
  env?: NodeJS.ProcessEnv;
}

/** A token for one repository, and where it came from (never the value in logs). */
export interface GitToken {
  value: string;
  username: string;
  source: "kv" | "task" | "env";
}

/**
 * Finds the token of a task's repository: `workspace.git.tokenFromKV` (secrets KV), then
 * `workspace.git.token` (compatibility), then the worker's environment variable for the org.
 * Every token found is registered with the redactor before it is returned.
 */
export class GitCredentials {
  constructor(private readonly options: GitCredentialOptions = {}) {}

  /** The token for `spec` in `org`, or undefined for an anonymous clone. */
  async resolve(
    spec: Pick<GitSpec, "token" | "tokenFromKV"> | undefined,
    org?: string,
  ): Promise<GitToken | undefined> {
    const username = this.options.username ?? "x-access-token";
    if (spec?.tokenFromKV !== undefined) {
      const key = spec.tokenFromKV;
      const lookup = this.options.getSecret;
      const bucket =
        this.options.secretsBucket?.(org) ?? (org !== undefined ? `coding-secrets-${org}` : "coding-secrets");
      if (!lookup) {
        throw new GitError(
          "auth",
          `workspace.git.tokenFromKV ${JSON.stringify(key)}: this worker has no secrets bucket configured`,
        );
      }
      let value: string | undefined;
      try {
        value = await lookup(key, org);
      } catch (err) {
        throw new GitError(
          "unavailable",
          `workspace.git.tokenFromKV ${JSON.stringify(key)}: the secrets bucket ${bucket} could not be read`,
          { cause: err },
        );
      }
      if (value === undefined || value.trim() === "") {
        throw new GitError(
          "auth",
          `workspace.git.tokenFromKV ${JSON.stringify(key)}: no key ${JSON.stringify(key)} in the secrets bucket ${bucket}${org !== undefined ? ` of org ${org}` : ""}; store the token first (station-coding${org !== undefined ? ` --org ${org}` : ""} secrets set ${key} --from-env <VAR>)`,
        );
      }
      return this.found(value.trim(), username, "kv");
    }
    if (spec?.token !== undefined && spec.token !== "") return this.found(spec.token, username, "task");
    const envName = this.envNameFor(org);
    const value = envName !== undefined ? (this.options.env ?? process.env)[envName] : undefined;
    if (value !== undefined && value !== "") return this.found(value, username, "env");
    return undefined;
  }

  /** The environment variable that holds the worker's token for `org`. */
  envNameFor(org: string | undefined): string | undefined {
    const byOrg = this.options.tokenEnvByOrg;
    if (org !== undefined && byOrg !== undefined) return byOrg[org];
    return this.options.tokenEnv;
  }

  private found(value: string, username: string, source: GitToken["source"]): GitToken {
    this.options.redactor?.add(value);
    return { value, username, source };
  }
}

const TOKEN_VAR = "STATION_GIT_TOKEN";
const USER_VAR = "STATION_GIT_USERNAME";

// Answers git's "Username for …" and "Password for …" prompts from the git child's environment, so
// the token is never written to disk, argv or the repository's configuration.
const SCRIPT = `#!/bin/sh
case "$1" in
  Username*|username*) printf '%s\\n' "$${USER_VAR}" ;;
  *) printf '%s\\n' "$${TOKEN_VAR}" ;;
esac
`;

/**
 * The `GIT_ASKPASS` helper: a tiny script in a private (0700) temporary directory that prints the
 * token from the git child's environment. Create once per worker, {@link dispose} on shutdown.
 */
export class Askpass {
  private constructor(
    private readonly dir: string,
    /** Path of the script. */
    readonly path: string,
  ) {}

  /** Writes the script into a new private directory under `parent`. @default os.tmpdir() */
  static async create(parent: string = tmpdir()): Promise<Askpass> {
    const dir = await mkdtemp(join(parent, "station-askpass-"));
    await chmod(dir, 0o700);
    const path = join(dir, "askpass.sh");
    await writeFile(path, SCRIPT, { mode: 0o700, flag: "wx" });
    return new Askpass(dir, path);
  }

  /** Environment variables that hand `token` to one git child process. */
  env(token: GitToken): Record<string, string> {
    return { GIT_ASKPASS: this.path, [TOKEN_VAR]: token.value, [USER_VAR]: token.username };
  }

  /** Removes the script and its directory. */
  async dispose(): Promise<void> {
    await rm(this.dir, { recursive: true, force: true });
  }
}
