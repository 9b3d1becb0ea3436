import { createUser } from "@nats-io/nkeys";
import { afterEach, describe, expect, it, vi } from "vitest";
import { DEFAULT_NATS_URL, ValidationError, natsConnectOptions, natsServers } from "@station-coding/protocol";

afterEach(() => vi.unstubAllEnvs());

describe("natsServers", () => {
  it("takes the given servers, a list or a comma-separated string, without blanks", () => {
    expect(natsServers("nats://a:4222, nats://b:4222,")).toEqual(["nats://a:4222", "nats://b:4222"]);
    expect(natsServers(["nats://a:4222"])).toEqual(["nats://a:4222"]);
  });

  it("falls back to NATS_URL, then to the default, when none are given", () => {
    vi.stubEnv("NATS_URL", "nats://env:4222");
    expect(natsServers()).toEqual(["nats://env:4222"]);
    vi.stubEnv("NATS_URL", "");
    expect(natsServers()).toEqual([DEFAULT_NATS_URL]);
  });
});

describe("natsConnectOptions", () => {
  it("builds every client's options: reconnect forever every 500 ms unless told otherwise", () => {
    expect(natsConnectOptions({ servers: "nats://a:4222", name: "x", inboxPrefix: "_INBOX_acme" })).toEqual({
      servers: ["nats://a:4222"],
      name: "x",
      inboxPrefix: "_INBOX_acme",
      maxReconnectAttempts: -1,
      reconnectTimeWait: 500,
    });
    expect(
      natsConnectOptions({ servers: "nats://a:4222", name: "x", timeout: 2_000, maxReconnectAttempts: 3 }),
    ).toMatchObject({ timeout: 2_000, maxReconnectAttempts: 3 });
  });

  it("passes a user with an empty password when none is given, and a token", () => {
    expect(natsConnectOptions({ name: "x", user: "u", token: "t" })).toMatchObject({
      user: "u",
      pass: "",
      token: "t",
    });
  });

  it("turns credentials into an authenticator and names bad ones by their label", () => {
    const seed = createUser().getSeed();
    expect(natsConnectOptions({ name: "x", creds: seed }).authenticator).toBeTypeOf("function");
    expect(() =>
      natsConnectOptions({ name: "x", creds: new TextEncoder().encode("junk"), credsLabel: "--creds a.nk" }),
    ).toThrow(ValidationError);
    expect(() =>
      natsConnectOptions({ name: "x", creds: new TextEncoder().encode("junk"), credsLabel: "--creds a.nk" }),
    ).toThrow(/--creds a\.nk: neither/);
  });
});
