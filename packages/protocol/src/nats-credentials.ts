import { readFile } from "node:fs/promises";
import { credsAuthenticator, nkeyAuthenticator } from "@nats-io/transport-node";
import type { Authenticator } from "@nats-io/transport-node";
import { ErrorCodes, ValidationError } from "./errors.js";

const JWT_MARK = "-----BEGIN NATS USER JWT-----";
/** A user nkey seed: `SU` and 56 more base32 characters. */
const USER_SEED = /\bSU[A-Z2-7]{56}\b/;

/**
 * The user nkey seed in a credentials file (a JWT `.creds` file or an nkey seed file such as
 * `station-coding org add` writes), or undefined when it holds none.
 */
export function seedFromCredentials(contents: Uint8Array | string): string | undefined {
  const text = typeof contents === "string" ? contents : new TextDecoder().decode(contents);
  return USER_SEED.exec(text)?.[0];
}

/**
 * The NATS authenticator for a credentials file: a JWT `.creds` file (servers in operator mode)
 * or a file holding a user nkey seed (nkey users of config-file accounts, e.g. the files that
 * `station-coding org add` writes).
 *
 * @throws ValidationError (INVALID_CONFIG) naming `what` when the file is neither.
 */
export function credentialsAuthenticator(contents: Uint8Array, what = "creds"): Authenticator {
  const text = new TextDecoder().decode(contents);
  if (text.includes(JWT_MARK)) return credsAuthenticator(contents);
  const seed = seedFromCredentials(text);
  if (seed === undefined) {
    throw new ValidationError(
      what,
      "credentials",
      `${what}: neither a NATS credentials file (JWT and seed) nor a user nkey seed (SU…)`,
      ErrorCodes.InvalidConfig,
    );
  }
  return nkeyAuthenticator(new TextEncoder().encode(seed));
}

/**
 * The contents of a credentials file named by the option `what`.
 *
 * @throws ValidationError (INVALID_CONFIG) naming the option and the file when it cannot be read.
 */
export async function readCredentialsFile(path: string, what: string): Promise<Uint8Array> {
  return readFile(path).catch((err: unknown) => {
    throw new ValidationError(
      what,
      "readable",
      `${what} ${JSON.stringify(path)}: cannot be read (${err instanceof Error ? err.message : String(err)})`,
      ErrorCodes.InvalidConfig,
    );
  });
}
