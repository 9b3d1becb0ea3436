import { jetstreamManager } from "@nats-io/jetstream";
import { connect } from "@nats-io/transport-node";
import type { NatsConnection } from "@nats-io/transport-node";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { RetentionPolicy, StorageType } from "@nats-io/jetstream";
import {
  TopologyConflictError,
  codingNames,
  ensureTaskConsumer,
  ensureTopology,
} from "@station-coding/protocol";
import { NatsServer } from "@station-coding/testkit";

let server: NatsServer;
let nc: NatsConnection;
beforeEach(async () => {
  server = await NatsServer.start();
  nc = await connect({ servers: server.url });
});
afterEach(async () => {
  await nc.close();
  await server.stop();
});

async function streamNames(): Promise<string[]> {
  const jsm = await jetstreamManager(nc);
  const names: string[] = [];
  for await (const s of jsm.streams.list()) names.push(s.config.name);
  return names.sort();
}

const EXPECTED = [
  "CODING_CANCELS",
  "CODING_DLQ",
  "CODING_EVENTS",
  "CODING_RESULTS",
  "CODING_TASKS",
  "KV_coding-leases",
  "KV_coding-secrets",
  "KV_coding-sessions",
  "KV_coding-state",
  "KV_coding-tasks",
  "KV_coding-workers",
  "OBJ_coding-artifacts",
];

describe("ensureTopology", () => {
  it("creates every stream, bucket and store, with the task stream as a file-backed work queue", async () => {
    const report = await ensureTopology(nc, codingNames());
    expect(report.created).toHaveLength(EXPECTED.length);
    expect(await streamNames()).toEqual(EXPECTED);
    const jsm = await jetstreamManager(nc);
    const tasks = await jsm.streams.info("CODING_TASKS");
    expect(tasks.config.retention).toBe(RetentionPolicy.Workqueue);
    expect(tasks.config.storage).toBe(StorageType.File);
    expect(tasks.config.subjects).toEqual(["station.coding.task"]);
    expect(tasks.config.duplicate_window).toBe(120_000_000_000);
    const results = await jsm.streams.info("CODING_RESULTS");
    expect(results.config.max_msgs_per_subject).toBe(1);
    expect(results.config.subjects).toEqual(["station.coding.result.*"]);
    const events = await jsm.streams.info("CODING_EVENTS");
    expect(events.config.retention).toBe(RetentionPolicy.Limits);
    expect(events.config.max_age).toBe(24 * 3600 * 1e9);
  });

  it("is idempotent: a second run creates nothing and finds everything", async () => {
    await ensureTopology(nc, codingNames());
    const again = await ensureTopology(nc, codingNames());
    expect(again.created).toEqual([]);
    expect(again.existing).toHaveLength(EXPECTED.length);
    expect(await streamNames()).toEqual(EXPECTED);
  });

  it("leaves one correct topology when 5 connections run it at once", async () => {
    const connections = await Promise.all(Array.from({ length: 5 }, () => connect({ servers: server.url })));
    try {
      const reports = await Promise.all(connections.map((c) => ensureTopology(c, codingNames())));
      // Every caller accounts for every resource (created it, or found it compatible)...
      for (const report of reports)
        expect(report.created.length + report.existing.length).toBe(EXPECTED.length);
      // ...and the server holds exactly one of each, with the work-queue config.
      expect(await streamNames()).toEqual(EXPECTED);
      const jsm = await jetstreamManager(nc);
      expect((await jsm.streams.info("CODING_TASKS")).config.retention).toBe(RetentionPolicy.Workqueue);
      expect(await ensureTopology(nc, codingNames())).toMatchObject({ created: [] });
    } finally {
      await Promise.all(connections.map((c) => c.close()));
    }
  });

  it("creates an org's own namespace beside the single-tenant one", async () => {
    await ensureTopology(nc, codingNames());
    await ensureTopology(nc, codingNames({ org: "acme" }));
    const names = await streamNames();
    expect(names).toContain("CODING_TASKS_acme");
    expect(names).toContain("KV_coding-sessions-acme");
    expect(names).toContain("OBJ_coding-artifacts-acme");
  });

  it("reports exactly what differs in an incompatible existing stream and changes nothing", async () => {
    const jsm = await jetstreamManager(nc);
    await jsm.streams.add({
      name: "CODING_TASKS",
      subjects: ["station.coding.task"],
      retention: RetentionPolicy.Limits,
      storage: StorageType.Memory,
    });
    const err = await ensureTopology(nc, codingNames()).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(TopologyConflictError);
    const conflict = err as TopologyConflictError;
    expect(conflict.code).toBe("TOPOLOGY_CONFLICT");
    expect(conflict.differences).toEqual([
      'stream CODING_TASKS: retention is "limits", expected "workqueue"',
      'stream CODING_TASKS: storage is "memory", expected "file"',
    ]);
    const after = await jsm.streams.info("CODING_TASKS");
    expect(after.config.retention).toBe(RetentionPolicy.Limits);
  });

  it("checks replicas only when asked, so clients accept a topology made for a cluster", async () => {
    await ensureTopology(nc, codingNames());
    expect((await ensureTopology(nc, codingNames())).created).toEqual([]);
    const err = (await ensureTopology(nc, codingNames(), { replicas: 2 }).catch(
      (e: unknown) => e,
    )) as TopologyConflictError;
    expect(err).toBeInstanceOf(TopologyConflictError);
    expect(err.differences).toContain("stream CODING_TASKS: num_replicas is 1, expected 2");
  });

  it("reports a KV bucket with the wrong history", async () => {
    const { Kvm } = await import("@nats-io/kv");
    await new Kvm(nc).create("coding-sessions", { history: 1 });
    const err = (await ensureTopology(nc, codingNames()).catch((e: unknown) => e)) as TopologyConflictError;
    expect(err.differences).toEqual(["kv bucket KV_coding-sessions: max_msgs_per_subject is 1, expected 5"]);
  });
});

describe("ensureTaskConsumer", () => {
  it("creates the durable pull consumer and updates its tunables", async () => {
    const names = codingNames();
    await ensureTopology(nc, names);
    const first = await ensureTaskConsumer(nc, names, { ackWait: 30_000, maxAckPending: 10 });
    expect(first.filter_subject).toBe("station.coding.task");
    expect(first.max_ack_pending).toBe(10);
    const second = await ensureTaskConsumer(nc, names, { ackWait: 5_000, maxAckPending: 20 });
    expect(second.ack_wait).toBe(5_000_000_000);
    expect(second.max_ack_pending).toBe(20);
  });
});
