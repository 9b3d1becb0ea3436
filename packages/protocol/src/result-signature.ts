import { createPrivateKey, sign as cryptoSign } from "node:crypto";
import type { KeyObject } from "node:crypto";
import { fromPublic, fromSeed } from "@nats-io/nkeys";
import type { KeyPair } from "@nats-io/nkeys";
import type { MsgHdrs } from "@nats-io/transport-node";
import { ErrorCodes, ValidationError } from "./errors.js";

/** Header with the public nkey that signed a result message. */
export const RESULT_SIGNER_HEADER = "Station-Result-Signer";
/** Header with the signature (base64url, Ed25519) of the result message's payload. */
export const RESULT_SIGNATURE_HEADER = "Station-Result-Signature";

/** A user public nkey: `U` and 55 more base32 characters. */
const USER_PUBLIC_KEY = /^U[A-Z2-7]{55}$/;

/**
 * Signs result payloads with a worker's nkey (usually the seed of its NATS credentials), so that a
 * dispatcher can tell a worker's result from a message that anyone else made the server store on
 * the result subject (e.g. through a push consumer's unchecked deliver subject, nats-server#8274).
 */
export class ResultSigner {
  /** The same key for node:crypto, which signs in microseconds where nkeys' JavaScript takes milliseconds. */
  private readonly native: KeyObject | undefined;

  private constructor(private readonly pair: KeyPair) {
    this.native = nativeKey(pair);
  }

  /** A signer from a user nkey seed (`SU…`). */
  static fromSeed(seed: string, what = "result signing key"): ResultSigner {
    try {
      const pair = fromSeed(new TextEncoder().encode(seed.trim()));
      if (!pair.getPublicKey().startsWith("U")) throw new Error("not a user key");
      return new ResultSigner(pair);
    } catch (err) {
      throw new ValidationError(
        what,
        "seed",
        `${what}: not a user nkey seed (SU…): ${err instanceof Error ? err.message : String(err)}`,
        ErrorCodes.InvalidConfig,
      );
    }
  }

  /** The public key dispatchers list as a trusted signer. */
  get publicKey(): string {
    return this.pair.getPublicKey();
  }

  /** Sets the signer and signature headers for `payload` on `headers`. */
  sign(payload: Uint8Array, headers: MsgHdrs): void {
    headers.set(RESULT_SIGNER_HEADER, this.publicKey);
    headers.set(RESULT_SIGNATURE_HEADER, Buffer.from(this.signature(payload)).toString("base64url"));
  }

  /** What signs: node:crypto, or nkeys' JavaScript when node:crypto cannot take the key. */
  get engine(): "node:crypto" | "nkeys" {
    return this.native ? "node:crypto" : "nkeys";
  }

  /** The Ed25519 signature of `payload` (the same bytes from node:crypto as from nkeys). */
  signature(payload: Uint8Array): Uint8Array {
    return this.native ? cryptoSign(null, payload, this.native) : this.pair.sign(payload);
  }
}

/** DER prefix of a PKCS#8 Ed25519 private key, followed by the 32-byte seed (RFC 8410). */
const ED25519_PKCS8_PREFIX = Buffer.from("302e020100300506032b657004220420", "hex");

/**
 * The pair's key as a node:crypto key, or undefined when it cannot be made or does not sign as the
 * pair does (checked once on a probe: Ed25519 signatures are deterministic).
 */
function nativeKey(pair: KeyPair): KeyObject | undefined {
  try {
    // nkeys' pairs have getRawSeed, which its KeyPair interface does not list.
    const raw = (pair as KeyPair & { getRawSeed?: () => Uint8Array }).getRawSeed?.();
    if (raw?.length !== 32) return undefined;
    const key = createPrivateKey({
      key: Buffer.concat([ED25519_PKCS8_PREFIX, raw]),
      format: "der",
      type: "pkcs8",
    });
    const probe = new TextEncoder().encode("station-coding result signer probe");
    return Buffer.from(cryptoSign(null, probe, key)).equals(Buffer.from(pair.sign(probe))) ? key : undefined;
  } catch {
    return undefined;
  }
}

/** Whether a result message is authentic, and why not. */
export type ResultAuthenticity = { ok: true; signer: string | undefined } | { ok: false; reason: string };

/**
 * Checks a result message against the trusted signers: with none, every message passes (unsigned
 * results are accepted); otherwise the message must carry a valid signature of its payload by one
 * of them.
 */
export function verifyResultSignature(
  payload: Uint8Array,
  headers: MsgHdrs | undefined,
  trustedSigners: readonly string[],
): ResultAuthenticity {
  if (trustedSigners.length === 0) return { ok: true, signer: undefined };
  const signer = headers?.get(RESULT_SIGNER_HEADER) ?? "";
  const signature = headers?.get(RESULT_SIGNATURE_HEADER) ?? "";
  if (signer === "" || signature === "") return { ok: false, reason: "it is not signed" };
  if (!trustedSigners.includes(signer)) {
    return { ok: false, reason: `its signer ${signer} is not a trusted worker key` };
  }
  try {
    const valid = fromPublic(signer).verify(payload, Buffer.from(signature, "base64url"));
    return valid ? { ok: true, signer } : { ok: false, reason: "its signature does not match its content" };
  } catch {
    return { ok: false, reason: "its signature cannot be read" };
  }
}

/**
 * Checks a list of trusted signer public keys (`U…`) and returns it.
 *
 * @throws ValidationError (INVALID_CONFIG) naming `field` and the key that is wrong.
 */
export function validateSigners(field: string, keys: readonly string[]): string[] {
  for (const key of keys) {
    if (!USER_PUBLIC_KEY.test(key)) {
      throw new ValidationError(
        field,
        "public key",
        `${field} ${JSON.stringify(key.slice(0, 60))}: not a user public nkey (U followed by 55 base32 characters)`,
        ErrorCodes.InvalidConfig,
      );
    }
  }
  return [...keys];
}
