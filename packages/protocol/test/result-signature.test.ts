import { randomBytes } from "node:crypto";
import { createUser, fromPublic } from "@nats-io/nkeys";
import { headers } from "@nats-io/transport-node";
import { describe, expect, it } from "vitest";
import {
  ErrorCodes,
  RESULT_SIGNATURE_HEADER,
  RESULT_SIGNER_HEADER,
  ResultSigner,
  ValidationError,
  credentialsAuthenticator,
  seedFromCredentials,
  validateSigners,
  verifyResultSignature,
} from "@station-coding/protocol";

function newSigner(): ResultSigner {
  return ResultSigner.fromSeed(new TextDecoder().decode(createUser().getSeed()));
}

describe("result signatures", () => {
  const payload = new TextEncoder().encode(JSON.stringify({ taskID: "t1", status: "completed" }));

  it("signs with node:crypto, byte for byte as nkeys does, verifiable by nkeys", () => {
    const pair = createUser();
    const signer = ResultSigner.fromSeed(new TextDecoder().decode(pair.getSeed()));
    expect(signer.engine).toBe("node:crypto");
    for (const size of [0, 1, 100, 70_000]) {
      const data = randomBytes(size);
      const signature = signer.signature(data);
      expect(Buffer.from(signature).toString("hex")).toBe(Buffer.from(pair.sign(data)).toString("hex"));
      expect(fromPublic(signer.publicKey).verify(data, signature)).toBe(true);
    }
  });

  it("accepts a payload signed by a trusted key and refuses every change to it", () => {
    const signer = newSigner();
    const h = headers();
    signer.sign(payload, h);
    expect(h.get(RESULT_SIGNER_HEADER)).toBe(signer.publicKey);
    expect(verifyResultSignature(payload, h, [signer.publicKey])).toEqual({
      ok: true,
      signer: signer.publicKey,
    });

    const tampered = new TextEncoder().encode(JSON.stringify({ taskID: "t1", status: "error" }));
    expect(verifyResultSignature(tampered, h, [signer.publicKey])).toEqual({
      ok: false,
      reason: "its signature does not match its content",
    });
    expect(verifyResultSignature(payload, h, [newSigner().publicKey])).toMatchObject({
      ok: false,
      reason: expect.stringMatching(/is not a trusted worker key/) as unknown,
    });
    expect(verifyResultSignature(payload, headers(), [signer.publicKey])).toEqual({
      ok: false,
      reason: "it is not signed",
    });
    const garbled = headers();
    garbled.set(RESULT_SIGNER_HEADER, signer.publicKey);
    garbled.set(RESULT_SIGNATURE_HEADER, "not base64 !!");
    expect(verifyResultSignature(payload, garbled, [signer.publicKey]).ok).toBe(false);
  });

  it("accepts unsigned payloads when no signer is trusted", () => {
    expect(verifyResultSignature(payload, undefined, [])).toEqual({ ok: true, signer: undefined });
  });

  it("refuses seeds and public keys that are not user nkeys, naming the option", () => {
    expect(() => ResultSigner.fromSeed("SUnotaseed", "resultSigningKey")).toThrow(
      /resultSigningKey: not a user nkey seed/,
    );
    expect(() => validateSigners("trustedSigners", ["ABC"])).toThrow(ValidationError);
    expect(() => validateSigners("trustedSigners", ["ABC"])).toThrow(
      /trustedSigners "ABC": not a user public nkey/,
    );
    expect(validateSigners("trustedSigners", [newSigner().publicKey])).toHaveLength(1);
  });
});

describe("credentials files", () => {
  it("reads the seed of an nkey seed file and of a JWT creds file, and refuses anything else", () => {
    const seed = new TextDecoder().decode(createUser().getSeed());
    expect(seedFromCredentials(`${seed}\n`)).toBe(seed);
    const creds = `-----BEGIN NATS USER JWT-----\neyJ0eXAiOiJKV1QifQ.e30.sig\n------END NATS USER JWT------\n\n-----BEGIN USER NKEY SEED-----\n${seed}\n------END USER NKEY SEED------\n`;
    expect(seedFromCredentials(creds)).toBe(seed);
    expect(typeof credentialsAuthenticator(new TextEncoder().encode(seed))).toBe("function");
    expect(typeof credentialsAuthenticator(new TextEncoder().encode(creds))).toBe("function");
    expect(() => credentialsAuthenticator(new TextEncoder().encode("password=x"), "--creds x")).toThrow(
      expect.objectContaining({
        code: ErrorCodes.InvalidConfig,
        message: expect.stringMatching(/^--creds x: neither/) as unknown,
      }) as Error,
    );
  });
});
