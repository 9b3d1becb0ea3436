import { existsSync } from "node:fs";

import { jetstream, jetstreamManager, StorageType } from "@nats-io/jetstream";
import { connect } from "@nats-io/transport-node";
import { NatsServer, NatsServerError, uniqueName } from "@station-coding/testkit";
import { afterEach, describe, expect, it, vi } from "vitest";

function processExists(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

describe("NatsServer", () => {
  const servers: NatsServer[] = [];
  const start = async (...args: Parameters<typeof NatsServer.start>) => {
    const server = await NatsServer.start(...args);
    servers.push(server);
    return server;
  };

  afterEach(async () => {
    vi.unstubAllEnvs();
    await Promise.all(servers.splice(0).map((server) => server.stop()));
  });

  it("starts a JetStream server on a random loopback port and stop() removes it and its store", async () => {
    const server = await start();
    expect(server.url).toBe(`nats://127.0.0.1:${server.port}`);
    expect(server.port).toBeGreaterThan(0);
    expect(processExists(server.pid!)).toBe(true);
    expect(existsSync(server.storeDir)).toBe(true);

    const nc = await connect({ servers: server.url });
    const jsm = await jetstreamManager(nc);
    const info = await jsm.getAccountInfo();
    expect(info.streams).toBe(0);
    await nc.close();

    await server.stop();
    expect(server.running).toBe(false);
    expect(processExists(server.pid!)).toBe(false);
    expect(existsSync(server.storeDir)).toBe(false);
    await server.stop(); // idempotent
  });

  it("restart() keeps JetStream file-store data and the port", async () => {
    const server = await start();
    const { port, pid } = server;
    const stream = uniqueName("restart");
    let nc = await connect({ servers: server.url });
    const jsm = await jetstreamManager(nc);
    await jsm.streams.add({ name: stream, subjects: [`${stream}.>`], storage: StorageType.File });
    await jetstream(nc).publish(`${stream}.a`, "before restart");
    await nc.close();

    await server.restart();
    expect(server.port).toBe(port);
    expect(server.pid).not.toBe(pid);
    expect(processExists(pid!)).toBe(false);

    nc = await connect({ servers: server.url });
    const msg = await (await jetstreamManager(nc)).streams.getMessage(stream, { seq: 1 });
    expect(msg?.string()).toBe("before restart");
    const ack = await jetstream(nc).publish(`${stream}.b`, "after restart");
    expect(ack.seq).toBe(2);
    await nc.close();
  });

  it("kill() ends the process at once, keeps the store, and restart() recovers the data", async () => {
    const server = await start();
    const stream = uniqueName("crash");
    const nc = await connect({ servers: server.url, reconnectTimeWait: 20, maxReconnectAttempts: -1 });
    const jsm = await jetstreamManager(nc);
    await jsm.streams.add({ name: stream, subjects: [stream], storage: StorageType.File });
    await jetstream(nc).publish(stream, "acked before the crash");
    const pid = server.pid!;
    const reconnected = (async () => {
      for await (const status of nc.status()) if (status.type === "reconnect") return status.server;
    })();

    await server.kill();
    expect(server.running).toBe(false);
    expect(processExists(pid)).toBe(false);
    expect(existsSync(server.storeDir)).toBe(true);

    await server.restart();
    // The client reconnects to the same port by itself. Wait for that: with nats.js 3.4 a JetStream
    // API request sent while still disconnected timed out (5 s) instead of being answered.
    expect(await reconnected).toBe(`127.0.0.1:${server.port}`);
    const info = await jsm.streams.info(stream);
    expect(info.state.messages).toBe(1);
    await nc.close();
  });

  it("can be used with await using", async () => {
    let pid: number | undefined;
    {
      await using server = await NatsServer.start({ jetstream: false });
      pid = server.pid;
      expect(processExists(pid!)).toBe(true);
    }
    expect(processExists(pid!)).toBe(false);
  });

  it("appends extra config, such as accounts", async () => {
    const server = await start({
      config: `accounts { A { jetstream: enabled, users: [{ user: a, password: a }] } }`,
    });
    await expect(connect({ servers: server.url, user: "a", pass: "wrong" })).rejects.toThrow(
      /Authorization Violation/i,
    );
    const nc = await connect({ servers: server.url, user: "a", pass: "a" });
    await nc.flush();
    await nc.close();
  });

  it("reports a missing binary with how to install it", async () => {
    vi.stubEnv("NATS_SERVER_BIN", undefined);
    const err = await NatsServer.start({ bin: "/nonexistent/nats-server", docker: false }).catch(
      (e: unknown) => e,
    );
    expect(err).toBeInstanceOf(NatsServerError);
    expect(err).toMatchObject({ code: "NATS_SERVER_NOT_FOUND" });
    expect((err as Error).message).toContain("/nonexistent/nats-server");
    expect((err as Error).message).toContain(
      "install it (apt-get install nats-server), set NATS_SERVER_BIN, or set NATS_URL",
    );
  });

  it("reports nats-server missing from PATH, with the Docker fallback disabled by env", async () => {
    vi.stubEnv("NATS_SERVER_BIN", undefined);
    vi.stubEnv("PATH", "/nonexistent");
    vi.stubEnv("NATS_SERVER_DOCKER", "0");
    await expect(NatsServer.start()).rejects.toThrow(
      /^nats-server not found on PATH: install it \(apt-get install nats-server\), set NATS_SERVER_BIN, or set NATS_URL/,
    );
  });

  it("surfaces the server's log when it exits during start", async () => {
    const err = await NatsServer.start({ config: "this is { not valid" }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(NatsServerError);
    expect(err).toMatchObject({ code: "NATS_SERVER_EXITED" });
    expect((err as Error).message).toMatch(/exited with code \d+ before it was ready; its last log lines:\n/);
    expect((err as NatsServerError).serverLog).not.toBe("");
  });

  it("reports a port taken by another server as retryable", async () => {
    const first = await start({ jetstream: false });
    const err = await NatsServer.start({ jetstream: false, port: first.port }).catch((e: unknown) => e);
    expect(err).toMatchObject({ code: "NATS_SERVER_PORT_IN_USE", retryable: true });
  });
});
