import { afterEach, describe, expect, it, vi } from "vitest";
import { ValidationError } from "@station-coding/protocol";
import { CodingDispatcher, resolveDispatcherOptions } from "@station-coding/dispatcher";

afterEach(() => {
  vi.unstubAllEnvs();
});

describe("dispatcher options", () => {
  it("defaults to NATS_URL, then the local server, in single-tenant mode", () => {
    vi.stubEnv("NATS_URL", "");
    const local = resolveDispatcherOptions();
    expect(local).toMatchObject({
      servers: ["nats://127.0.0.1:4222"],
      org: undefined,
      ensureTopology: true,
      requestTimeout: 10_000,
      maxArtifactBytes: 64 * 1024 * 1024,
      eventsSettle: 2_000,
      name: "station-coding-dispatcher",
    });
    expect(local.names.taskSubject).toBe("station.coding.task");
    expect(local.names.inboxPrefix).toBe("_INBOX");
    vi.stubEnv("NATS_URL", "nats://a:4222, nats://b:4222");
    expect(resolveDispatcherOptions().servers).toEqual(["nats://a:4222", "nats://b:4222"]);
  });

  it("scopes every name to the org and takes name overrides and durations", () => {
    const o = resolveDispatcherOptions({
      org: "acme",
      names: { kv: { sessions: "my-sessions" } },
      requestTimeout: "2s",
      eventsSettle: 500,
    });
    expect(o.names.taskSubject).toBe("org.acme.coding.task");
    expect(o.names.streams.events).toBe("CODING_EVENTS_acme");
    expect(o.names.kv.sessions).toBe("my-sessions");
    expect(o.names.inboxPrefix).toBe("_INBOX_acme");
    expect(o.requestTimeout).toBe(2_000);
    expect(o.eventsSettle).toBe(500);
  });

  it("rejects invalid options with an error naming the option", () => {
    expect(() => resolveDispatcherOptions({ org: "a.b" })).toThrow(ValidationError);
    expect(() => resolveDispatcherOptions({ org: "a.b" })).toThrow(/^org "a\.b": must not contain "\."$/);
    expect(() => resolveDispatcherOptions({ requestTimeout: "soon" })).toThrow(
      /requestTimeout "soon": must be a duration/,
    );
    expect(() => resolveDispatcherOptions({ maxArtifactBytes: -1 })).toThrow(/maxArtifactBytes/);
    expect(() => resolveDispatcherOptions({ servers: " , " })).toThrow(
      /servers " , ": must name at least one/,
    );
  });

  it("says which creds file cannot be read before connecting", async () => {
    await expect(CodingDispatcher.connect({ creds: "/nonexistent/user.creds" })).rejects.toThrow(
      /^creds "\/nonexistent\/user\.creds": cannot be read \(ENOENT/,
    );
  });
});
