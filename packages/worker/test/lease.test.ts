import { Kvm } from "@nats-io/kv";
import type { KV } from "@nats-io/kv";
import { connect } from "@nats-io/transport-node";
import type { NatsConnection } from "@nats-io/transport-node";
import { codingNames, ensureTopology } from "@station-coding/protocol";
import { NatsServer } from "@station-coding/testkit";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { Leases } from "@station-coding/worker/internal";

let server: NatsServer;
let nc: NatsConnection;
let kv: KV;
const names = codingNames();
let n = 0;
const unique = (prefix: string): string => `${prefix}-${(n += 1)}`;

beforeAll(async () => {
  server = await NatsServer.start();
  nc = await connect({ servers: server.url });
  await ensureTopology(nc, names);
  kv = await new Kvm(nc).open(names.kv.leases);
});

afterAll(async () => {
  await nc.close();
  await server.stop();
});

describe("task leases", () => {
  it("lets exactly one of two workers run a new task that both acquire at once", async () => {
    const taskID = unique("task");
    const outcomes = await Promise.all(
      ["w1", "w2"].map((w) => new Leases(kv, w, 30_000).acquire(taskID, 1, 3)),
    );
    expect(outcomes.map((o) => o.kind).sort()).toEqual(["busy", "run"]);
    const run = outcomes.find((o) => o.kind === "run");
    expect(run).toMatchObject({ lease: { value: { state: "running", attempts: 1, generation: 0 } } });
  });

  it("counts the attempt of a redelivery after the first run's lease expired", async () => {
    const taskID = unique("task");
    let clock = 1_000_000;
    const first = await new Leases(kv, "w1", 1_000, () => clock).acquire(taskID, 1, 3);
    expect(first.kind).toBe("run");
    clock += 5_000;
    const second = await new Leases(kv, "w2", 1_000, () => clock).acquire(taskID, 1, 3);
    expect(second).toMatchObject({ kind: "run", lease: { value: { attempts: 2, workerID: "w2" } } });
  });

  it("drops a task whose lease is done, created or not", async () => {
    const taskID = unique("task");
    const leases = new Leases(kv, "w1", 30_000);
    const outcome = await leases.acquire(taskID, 1, 3);
    if (outcome.kind !== "run") throw new Error(`expected run, got ${outcome.kind}`);
    await leases.settle(outcome.lease, "done");
    expect(await new Leases(kv, "w2", 30_000).acquire(taskID, 1, 3)).toEqual({ kind: "done" });
  });
});

describe("session locks", () => {
  it("says a new session's lock is its first, and a later one is not, while still guarding it", async () => {
    const session = unique("session");
    const a = new Leases(kv, "w1", 30_000);
    const b = new Leases(kv, "w2", 30_000);
    const first = await a.lockSession(session, "t1", true);
    expect(first?.first).toBe(true);
    // Held by t1: another task does not get it, whether it guesses the session is new or not.
    expect(await b.lockSession(session, "t2", true)).toBeUndefined();
    expect(await b.lockSession(session, "t2")).toBeUndefined();
    await a.unlockSession(first!);
    const second = await b.lockSession(session, "t2", true);
    expect(second).toBeDefined();
    expect(second?.first).toBeUndefined();
  });

  it("releases a lock once: a second unlock does not touch the next holder's lock", async () => {
    const session = unique("session");
    const a = new Leases(kv, "w1", 30_000);
    const lock = await a.lockSession(session, "t1", true);
    await a.unlockSession(lock!);
    expect(lock?.released).toBe(true);
    const next = await new Leases(kv, "w2", 30_000).lockSession(session, "t2");
    const revision = (await kv.get(`session.${session}`))?.revision;
    await a.unlockSession(lock!);
    expect((await kv.get(`session.${session}`))?.revision).toBe(revision);
    expect(next?.value.taskID).toBe("t2");
  });
});
