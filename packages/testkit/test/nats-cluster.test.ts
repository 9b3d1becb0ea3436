import { get } from "node:http";

import { jetstream, jetstreamManager, StorageType } from "@nats-io/jetstream";
import { connect } from "@nats-io/transport-node";
import type { NatsConnection } from "@nats-io/transport-node";
import { NatsCluster, uniqueName, waitFor } from "@station-coding/testkit";
import { afterAll, beforeAll, describe, expect, it } from "vitest";

interface JszAccounts {
  account_details?: { stream_detail?: { name: string; state: { messages: number } }[] }[];
}

function getJson(url: string): Promise<JszAccounts> {
  return new Promise((resolve, reject) => {
    get(url, { agent: false }, (res) => {
      let body = "";
      res.on("data", (chunk: Buffer) => (body += chunk.toString()));
      res.on("end", () => resolve(JSON.parse(body) as JszAccounts));
    }).on("error", reject);
  });
}

/** Messages the node itself stores for `stream`, from its monitoring endpoint. */
async function localMessages(monitorUrl: string, stream: string): Promise<number | undefined> {
  const jsz = await getJson(`${monitorUrl}/jsz?accounts=true&streams=true`);
  for (const account of jsz.account_details ?? []) {
    for (const detail of account.stream_detail ?? []) {
      if (detail.name === stream) return detail.state.messages;
    }
  }
  return undefined;
}

function processExists(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

describe("NatsCluster", () => {
  let cluster: NatsCluster;
  let nc: NatsConnection;

  beforeAll(async () => {
    cluster = await NatsCluster.start();
    nc = await connect({ servers: cluster.urls, reconnectTimeWait: 20, maxReconnectAttempts: -1 });
  });

  afterAll(async () => {
    await nc?.close();
    await cluster?.stop();
  });

  it("forms a 3-node JetStream cluster with a meta leader", async () => {
    expect(cluster.nodes).toHaveLength(3);
    expect(new Set(cluster.urls).size).toBe(3);
    expect(cluster.servers).toBe(cluster.urls.join(","));
    expect(cluster.nodes.map((n) => n.serverName)).toEqual([0, 1, 2].map((i) => `${cluster.name}-n${i}`));
    const leader = await cluster.metaLeader();
    expect(cluster.nodes).toContain(leader);
    const info = await (await jetstreamManager(nc)).getAccountInfo();
    expect(info.streams).toBe(0);
  });

  it("keeps an R3 stream available while its leader is down, and the node rejoins on restart", async () => {
    const jsm = await jetstreamManager(nc);
    const js = jetstream(nc);
    const stream = uniqueName("r3");
    await jsm.streams.add({
      name: stream,
      subjects: [`${stream}.>`],
      storage: StorageType.File,
      num_replicas: 3,
    });
    for (let i = 1; i <= 3; i++) await js.publish(`${stream}.m`, `m${i}`, { msgID: `m${i}` });

    const leaderName = (await jsm.streams.info(stream)).cluster?.leader;
    const victim = cluster.nodes.find((n) => n.serverName === leaderName)!;
    expect(victim).toBeDefined();
    const pid = victim.pid!;
    await victim.kill();
    expect(processExists(pid)).toBe(false);

    // Publishes go through once the two survivors have elected a new stream leader (nats-server
    // waits 4-9 s for a lost leader before it campaigns, so allow two rounds); msgID makes the
    // retried publish idempotent.
    for (let i = 4; i <= 6; i++) {
      await waitFor(() => js.publish(`${stream}.m`, `m${i}`, { msgID: `m${i}`, timeout: 1_000 }), {
        timeout: 20_000,
        message: `publish m${i} with the stream leader down`,
      });
    }
    const info = await jsm.streams.info(stream);
    expect(info.state.messages).toBe(6);
    expect(info.cluster?.leader).not.toBe(victim.serverName);
    expect((await jsm.streams.getMessage(stream, { seq: 1 }))?.string()).toBe("m1");

    await victim.restart();
    await cluster.waitForReady();
    await waitFor(async () => (await localMessages(victim.monitorUrl!, stream)) === 6, {
      message: `${victim.serverName} to catch up on ${stream}`,
    });
    await waitFor(
      async () => {
        const replicas = (await jsm.streams.info(stream)).cluster?.replicas ?? [];
        return replicas.length === 2 && replicas.every((r) => r.current);
      },
      { message: `all replicas of ${stream} current` },
    );
  });
});
