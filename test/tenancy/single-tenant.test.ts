// The single-tenant server as shipped for compose (deploy/nats/nats.conf) with its users enabled
// (deploy/nats/users.conf): only the worker may publish events and results, the client submits and
// reads, anonymous clients are refused. A worker that logs in with a password signs its results
// with --result-signing-key, so a client's forgery through a push consumer is ignored too.
import { readFile, rm, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { AckPolicy, DeliverPolicy, jetstream, jetstreamManager } from "@nats-io/jetstream";
import { createUser } from "@nats-io/nkeys";
import { Objm } from "@nats-io/obj";
import { connect } from "@nats-io/transport-node";
import type { NatsConnection } from "@nats-io/transport-node";
import { pino } from "pino";
import {
  RESULT_SIGNER_HEADER,
  codingNames,
  ensureTaskConsumer,
  ensureTopology,
} from "@station-coding/protocol";
import { CodingDispatcher } from "@station-coding/dispatcher";
import { CodingWorker } from "@station-coding/worker";
import { tempDir, waitFor } from "@station-coding/testkit";
import { ScriptedDriver, script } from "@station-coding/testkit/worker";
import { renderSingleTenantUsers } from "@station-coding/cli/internal";
import { ShippedTenancyServer, fails, refused } from "./support/tenancy-env.js";

const NATS_CONF = fileURLToPath(new URL("../../deploy/nats/nats.conf", import.meta.url));
const USERS_CONF = fileURLToPath(new URL("../../deploy/nats/users.conf", import.meta.url));
const PASSWORDS = {
  STATION_NATS_ADMIN_PASSWORD: "admin-pw-1",
  STATION_NATS_WORKER_PASSWORD: "worker-pw-2",
  STATION_NATS_CLIENT_PASSWORD: "client-pw-3",
};
const names = codingNames({});
let dir: string;
let server: ShippedTenancyServer;
const connections: NatsConnection[] = [];
let worker: CodingWorker;
let signer: string;
const logs: string[] = [];
const driver = new ScriptedDriver();

const as = async (user: string, pass: string) => {
  const nc = await connect({ servers: server.url, user, pass });
  connections.push(nc);
  return nc;
};

beforeAll(async () => {
  dir = await tempDir("single-tenant");
  const shipped = await readFile(NATS_CONF, "utf8");
  expect(shipped).toContain("\n# include ./users.conf\n");
  const config = shipped
    .replace("\n# include ./users.conf\n", "\ninclude ./users.conf\n")
    .replace(/^port: .*$/m, "listen: 127.0.0.1:-1")
    .replace(/^http_port: .*$/m, "http: 127.0.0.1:-1")
    .replace(/store_dir: .*$/m, `store_dir: ${JSON.stringify(join(dir, "store"))}`);
  await writeFile(join(dir, "users.conf"), await readFile(USERS_CONF));
  server = await ShippedTenancyServer.run(dir, config, PASSWORDS);
  const admin = await as("admin", PASSWORDS.STATION_NATS_ADMIN_PASSWORD);
  await ensureTopology(admin, names);
  await ensureTaskConsumer(admin, names);
  const key = createUser();
  signer = key.getPublicKey();
  await writeFile(join(dir, "signing.nk"), new TextDecoder().decode(key.getSeed()), { mode: 0o600 });
  worker = await CodingWorker.start({
    driver,
    servers: server.url,
    user: "worker",
    pass: PASSWORDS.STATION_NATS_WORKER_PASSWORD,
    resultSigningKey: join(dir, "signing.nk"),
    ensureTopology: false,
    workspaceDir: join(dir, "ws"),
    pullExpires: 1_000,
    heartbeatInterval: 500,
    logDestination: { write: (line: string) => void logs.push(line) },
  });
});
afterAll(async () => {
  await worker?.stop();
  for (const nc of connections) await nc.close().catch(() => undefined);
  await server?.stop();
  if (dir) await rm(dir, { recursive: true, force: true });
});

describe("single-tenant server with the shipped users", () => {
  it("ships users.conf as generated from the role permissions (npm run nats-users)", async () => {
    expect(await readFile(USERS_CONF, "utf8")).toBe(renderSingleTenantUsers());
  });

  it("lets only the worker publish results and events; the client submits and waits; strangers are refused", async () => {
    await expect(connect({ servers: server.url, timeout: 2_000, maxReconnectAttempts: 0 })).rejects.toThrow(
      /authorization/i,
    );
    const client = await as("client", PASSWORDS.STATION_NATS_CLIENT_PASSWORD);
    for (const subject of [names.resultSubject("t1"), names.streamSubject("t1")]) {
      expect(await refused(jetstream(client).publish(subject, "{}"))).toMatchObject({
        operation: "publish",
        subject,
      });
    }
    expect(
      await refused(
        client.request(`$JS.API.CONSUMER.MSG.NEXT.${names.streams.tasks}.${names.consumer}`, "{}"),
      ),
    ).toMatchObject({
      operation: "publish",
    });
    const workerConn = await as("worker", PASSWORDS.STATION_NATS_WORKER_PASSWORD);
    expect(await refused(jetstream(workerConn).publish(names.taskSubject, "{}"))).toMatchObject({
      operation: "publish",
    });

    const dispatcher = await CodingDispatcher.connect({
      connection: client,
      ensureTopology: false,
      trustedSigners: [signer],
      logger: pino({ level: "debug" }, { write: (line: string) => void logs.push(line) }),
    });
    const handle = await dispatcher.submit({
      taskID: "st-1",
      prompt: script({ sleep: 1_000 }, { text: "single-tenant answer" }),
    });
    const waiting = handle.result();
    await waitFor(() => driver.calls.some((c) => c.taskID === "st-1"), { message: "the task to start" });
    // The client role may stage inputs and create consumers to read them: it forges a result
    // through a push consumer's deliver subject, which the server does not check.
    const store = await new Objm(client).open(names.objectStore);
    const info = await store.putBlob(
      { name: "input/st-1/evil.json" },
      new TextEncoder().encode(
        JSON.stringify({
          taskID: "st-1",
          status: "completed",
          result: "FORGED",
          session: { name: "s", opencodeID: "x", messageCount: 1 },
          workspace: { name: "w", path: "/" },
          metrics: { duration: 1, toolCalls: 0, streamEvents: 0 },
        }),
      ),
    );
    await (
      await jetstreamManager(client)
    ).consumers.add(`OBJ_${names.objectStore}`, {
      name: "forge",
      filter_subject: `$O.${names.objectStore}.C.${info.nuid}`,
      deliver_subject: names.resultSubject("st-1"),
      deliver_policy: DeliverPolicy.All,
      ack_policy: AckPolicy.None,
    });
    await waitFor(() => logs.some((l) => l.includes("st-1") && l.includes("not signed")), {
      message: "the forgery to be ignored",
    });
    expect(await waiting).toMatchObject({
      taskID: "st-1",
      status: "completed",
      result: "single-tenant answer",
    });
    const admin = await jetstreamManager(await as("admin", PASSWORDS.STATION_NATS_ADMIN_PASSWORD));
    const stored = await admin.streams.getMessage(names.streams.results, {
      last_by_subj: names.resultSubject("st-1"),
    });
    expect(stored?.header?.get(RESULT_SIGNER_HEADER)).toBe(signer);
    // A wrong password is refused too.
    expect(
      String(
        await fails(connect({ servers: server.url, user: "worker", pass: "wrong", maxReconnectAttempts: 0 })),
      ),
    ).toMatch(/authorization/i);
  });
});
