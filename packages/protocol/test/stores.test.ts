import { connect } from "@nats-io/transport-node";
import type { NatsConnection } from "@nats-io/transport-node";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { Kvm } from "@nats-io/kv";
import {
  AgentContextStore,
  SessionStore,
  codingNames,
  ensureTopology,
  storedKeys,
} from "@station-coding/protocol";
import type { SessionState } from "@station-coding/protocol";
import { NatsServer, waitFor } from "@station-coding/testkit";

let server: NatsServer;
let nc: NatsConnection;
const names = codingNames();
beforeEach(async () => {
  server = await NatsServer.start();
  nc = await connect({ servers: server.url });
  await ensureTopology(nc, names);
});
afterEach(async () => {
  await nc.close();
  await server.stop();
});

const base: SessionState = {
  sessionName: "s",
  opencodeID: "ses_1",
  workspaceName: "s",
  workspacePath: "/w/s",
  created: "2026-01-01T00:00:00Z",
  lastUsed: "2026-01-01T00:00:00Z",
  messageCount: 0,
};

describe("SessionStore", () => {
  it("updates against a record read before, and reads afresh when another writer came in between", async () => {
    const store = await SessionStore.open(nc, names);
    await store.update("known", () => base);
    const read = await store.get("known");
    const bump = (s: SessionState | undefined): SessionState => ({
      ...base,
      messageCount: (s?.messageCount ?? 0) + 1,
    });
    expect((await store.update("known", bump, { entry: read })).value.messageCount).toBe(1);
    // `read` is stale now: the write against it fails its compare-and-set and the record is read again.
    expect((await store.update("known", bump, { entry: read })).value.messageCount).toBe(2);
    expect((await store.update("new-one", bump, { entry: undefined })).value.messageCount).toBe(1);
    expect((await store.update("new-one", bump, { entry: undefined })).value.messageCount).toBe(2);
    expect((await store.get("known"))?.value.messageCount).toBe(2);
  });

  it("counts right when 10 writers update one session at once (compare-and-set)", async () => {
    const connections = await Promise.all(Array.from({ length: 5 }, () => connect({ servers: server.url })));
    try {
      const stores = await Promise.all(connections.map((c) => SessionStore.open(c, names)));
      await Promise.all(
        Array.from({ length: 10 }, (_, i) =>
          stores[i % stores.length]!.update("s", (cur) => ({
            ...(cur ?? base),
            messageCount: (cur?.messageCount ?? 0) + 1,
          })),
        ),
      );
      const store = await SessionStore.open(nc, names);
      expect((await store.get("s"))?.value.messageCount).toBe(10);
      expect((await store.list()).map((s) => s.sessionName)).toEqual(["s"]);
      await store.delete("s");
      expect(await store.get("s")).toBeUndefined();
    } finally {
      await Promise.all(connections.map((c) => c.close()));
    }
  });
});

describe("storedKeys", () => {
  it("lists a bucket's keys from the stream's subject index, with a filter", async () => {
    const kv = await new Kvm(nc).open(names.kv.state);
    await Promise.all(Array.from({ length: 1_200 }, (_, i) => kv.put(`a-${i % 3}.k${i}`, "v")));
    await kv.delete("a-0.k0");
    const all = await storedKeys(nc, names.kv.state);
    expect(all).toHaveLength(1_200);
    expect(all).toContain("a-0.k0"); // a delete marker is still a stored message: readers skip it
    const one = await storedKeys(nc, names.kv.state, "a-1.>");
    expect(one).toHaveLength(400);
    expect(one.every((k) => k.startsWith("a-1."))).toBe(true);
    expect(await storedKeys(nc, names.kv.state, "nobody.>")).toEqual([]);
  });

  it("leaves deleted and purged sessions and context entries out of the lists", async () => {
    const sessions = await SessionStore.open(nc, names);
    for (const name of ["a", "b", "c"]) await sessions.update(name, () => ({ ...base, sessionName: name }));
    await sessions.delete("b");
    expect((await sessions.list()).map((s) => s.sessionName)).toEqual(["a", "c"]);

    const ctx = await AgentContextStore.open(nc, names);
    await ctx.set("agent-1", "x", 1);
    await ctx.set("agent-1", "y", 2);
    await ctx.set("agent-2", "x", 3);
    await ctx.delete("agent-1", "x");
    await ctx.kv.purge("agent-2.x");
    expect((await ctx.list()).map((c) => `${c.agentID}.${c.key}`)).toEqual(["agent-1.y"]);
    expect(await ctx.list("agent-2")).toEqual([]);
  });
});

describe("AgentContextStore", () => {
  it("round-trips JSON values and honours a TTL on read", async () => {
    const ctx = await AgentContextStore.open(nc, names);
    await ctx.set("agent-1", "plan", { steps: ["a", "b"] });
    await ctx.set("agent-1", "scratch", "short-lived", { ttl: 300 });
    expect((await ctx.get("agent-1", "plan"))?.value).toEqual({ steps: ["a", "b"] });
    expect((await ctx.get("agent-1", "scratch"))?.value).toBe("short-lived");
    expect((await ctx.list("agent-1")).map((c) => c.key).sort()).toEqual(["plan", "scratch"]);
    await waitFor(async () => (await ctx.get("agent-1", "scratch")) === undefined, { message: "TTL expiry" });
    await ctx.delete("agent-1", "plan");
    expect(await ctx.get("agent-1", "plan")).toBeUndefined();
  });

  it("rejects keys that would escape the agent's key space", async () => {
    const ctx = await AgentContextStore.open(nc, names);
    await expect(ctx.set("agent-1", "a.b", 1)).rejects.toThrow('key "a.b": must not contain "."');
    await expect(ctx.get("agent>", "k")).rejects.toThrow(/^agentID/);
  });
});
