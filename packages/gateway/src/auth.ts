import { createHash, timingSafeEqual } from "node:crypto";
import { ErrorCodes, StationError } from "@station-coding/protocol";
import type { GatewayRole, GatewayTokenConfig } from "./config.js";
import { HttpProblem } from "./problem.js";

/** Who a request is: the token's name (never the token), its org and its role. */
export interface Principal {
  /** The token's configured name: what logs and metrics show. */
  name: string;
  /** The org it sees; undefined for an admin (every org) or in single-tenant mode. */
  org: string | undefined;
  role: GatewayRole;
}

interface Entry extends Principal {
  digest: Buffer;
}

/** The hex SHA-256 of a token, as station.yaml's `sha256` holds it. */
export function hashToken(token: string): string {
  return createHash("sha256").update(token, "utf8").digest("hex");
}

/** The digest a `sha256`/`tokenEnv` pair stands for; `tokenEnv` is read from `env` now. */
export function secretDigest(
  label: string,
  secret: { sha256?: string | undefined; tokenEnv?: string | undefined },
  env: NodeJS.ProcessEnv,
): Buffer {
  if (secret.sha256 !== undefined) return Buffer.from(secret.sha256.toLowerCase(), "hex");
  const value = secret.tokenEnv !== undefined ? env[secret.tokenEnv] : undefined;
  if (value === undefined || value === "") {
    throw new StationError(
      ErrorCodes.InvalidConfig,
      `${label}: environment variable ${secret.tokenEnv ?? "(none)"} is not set; set it to the token or give sha256`,
    );
  }
  if (value.length < MIN_TOKEN_LENGTH) {
    throw new StationError(
      ErrorCodes.InvalidConfig,
      `${label}: the token in ${secret.tokenEnv ?? "(none)"} has ${value.length} characters; use at least ${MIN_TOKEN_LENGTH} (e.g. \`openssl rand -hex 32\`)`,
    );
  }
  return createHash("sha256").update(value, "utf8").digest();
}

/** Shortest token the gateway takes from the environment (a digest's token cannot be checked). */
export const MIN_TOKEN_LENGTH = 16;

/**
 * The gateway's bearer tokens. Only SHA-256 digests are kept; a presented token is hashed and
 * compared with every digest in constant time (no early exit), so neither the answer's timing nor
 * its content says how close a guess was.
 */
export class TokenTable {
  private readonly entries: Entry[];

  constructor(tokens: readonly GatewayTokenConfig[], env: NodeJS.ProcessEnv = process.env) {
    const names = new Set<string>();
    this.entries = tokens.map((t, i) => {
      const label = `gateway.tokens[${i}] (${t.name})`;
      if (names.has(t.name)) {
        throw new StationError(ErrorCodes.InvalidConfig, `${label}: the name ${t.name} is used twice`);
      }
      names.add(t.name);
      if (t.role === "admin" && t.org !== undefined) {
        throw new StationError(
          ErrorCodes.InvalidConfig,
          `${label}: an admin token sees every org; remove org ${t.org} or make it an operator`,
        );
      }
      return { name: t.name, org: t.org, role: t.role, digest: secretDigest(label, t, env) };
    });
  }

  /** The orgs the tokens name (an org token needs a connection to its org). */
  get orgs(): string[] {
    return [...new Set(this.entries.flatMap((e) => (e.org !== undefined ? [e.org] : [])))];
  }

  /** How many tokens there are. */
  get size(): number {
    return this.entries.length;
  }

  /**
   * The principal of an `Authorization` header.
   *
   * @throws HttpProblem 401 with `WWW-Authenticate: Bearer` when the header is missing, not a
   *   bearer token, or names no configured token. The detail never repeats the token.
   */
  authenticate(header: string | undefined): Principal {
    const match = header === undefined ? null : /^Bearer[ ]+([^\s]+)\s*$/i.exec(header);
    if (!match?.[1]) {
      throw unauthorized(
        header === undefined
          ? "missing Authorization header: send Authorization: Bearer <token>"
          : "Authorization header is not a bearer token: send Authorization: Bearer <token>",
        header === undefined ? undefined : "invalid_request",
      );
    }
    const presented = createHash("sha256").update(match[1], "utf8").digest();
    let found: Entry | undefined;
    for (const entry of this.entries) {
      if (timingSafeEqual(entry.digest, presented) && found === undefined) found = entry;
    }
    if (!found) throw unauthorized("the bearer token is not one of the gateway's tokens", "invalid_token");
    return { name: found.name, org: found.org, role: found.role };
  }
}

/** Whether a presented token matches a digest, in constant time. */
export function tokenMatches(header: string | undefined, digest: Buffer): boolean {
  const match = header === undefined ? null : /^Bearer[ ]+([^\s]+)\s*$/i.exec(header);
  if (!match?.[1]) return false;
  return timingSafeEqual(createHash("sha256").update(match[1], "utf8").digest(), digest);
}

/** A 401 with the challenge RFC 6750 asks for. */
export function unauthorized(detail: string, error?: "invalid_request" | "invalid_token"): HttpProblem {
  const challenge = error
    ? `Bearer realm="station-coding", error="${error}"`
    : `Bearer realm="station-coding"`;
  return new HttpProblem(401, "unauthorized", detail, {}, { "WWW-Authenticate": challenge });
}

/** Refuses a write to a viewer token. */
export function requireWriter(principal: Principal, action: string): void {
  if (principal.role === "viewer") {
    throw new HttpProblem(
      403,
      "forbidden",
      `token ${principal.name} is a viewer and may not ${action}; use an operator token`,
    );
  }
}
