// The testkit's Docker fallback: where no nats-server binary is found, NatsServer runs the NATS image
// through testcontainers. Everywhere else nats-server is on PATH, so here the path is forced by
// naming a binary that does not exist, and the engine's stand-in nats:2.11-alpine image serves.
import { jetstream, jetstreamManager } from "@nats-io/jetstream";
import { connect } from "@nats-io/transport-node";
import { describe, expect, it } from "vitest";
import { NatsServer, waitFor } from "@station-coding/testkit";
import { runOk } from "./support/engine.js";

/** IDs of the containers testcontainers made (it labels them), running or not. */
async function testcontainers(): Promise<string[]> {
  const ps = await runOk("docker", ["ps", "-aq", "--filter", "label=org.testcontainers=true"]);
  return ps.stdout.split("\n").filter(Boolean);
}

describe("NatsServer's testcontainers fallback", () => {
  it("runs nats-server in a container, passes a JetStream round trip, keeps its store through kill and restart, and removes the container on stop", async () => {
    const before = await testcontainers();
    // A container starts (and starts again) slower than a process, the more so on a busy machine.
    const server = await NatsServer.start({
      bin: "/nonexistent/nats-server",
      monitor: true,
      startTimeout: 60_000,
    });
    let container: string | undefined;
    let failed = false;
    try {
      expect(server.pid, "no local process").toBeUndefined();
      [container] = (await testcontainers()).filter((id) => !before.includes(id));
      expect(container, "a container made by testcontainers").toBeDefined();
      const image = await runOk("docker", ["inspect", "--format", "{{.Config.Image}}", container!]);
      expect(image.stdout.trim()).toBe("nats:2.11-alpine");
      const health = await fetch(`${server.monitorUrl}/healthz?js-enabled-only=true`);
      expect(await health.json()).toEqual({ status: "ok" });

      const nc = await connect({ servers: server.url, maxReconnectAttempts: -1, reconnectTimeWait: 250 });
      try {
        const jsm = await jetstreamManager(nc);
        await jsm.streams.add({ name: "ROUND_TRIP", subjects: ["round.trip.>"] });
        const js = jetstream(nc);
        expect((await js.publish("round.trip.a", "hello")).seq).toBe(1);
        const consumer = await js.consumers.get("ROUND_TRIP");
        const first = await consumer.next({ expires: 5_000 });
        expect(first?.string()).toBe("hello");

        await server.kill();
        expect(server.running).toBe(false);
        await server.restart();
        // A publish sent while the client reconnects can go unanswered: retried with its msgID, as
        // a JetStream client does after a server crash, it is stored once.
        const again = await waitFor(
          () => js.publish("round.trip.b", "again", { msgID: "round-trip-b", timeout: 2_000 }),
          { timeout: 30_000, interval: 100, message: "the restarted server storing a message" },
        );
        expect(again.seq).toBe(2);
        expect((await jsm.streams.info("ROUND_TRIP")).state.messages).toBe(2);
      } finally {
        await nc.close();
      }
    } catch (err) {
      failed = true;
      throw err;
    } finally {
      // testcontainers removes a container whose wait strategy failed: then stop() cannot find it,
      // and its error must not hide the first one.
      await server.stop().catch((err: unknown) => {
        if (!failed) throw err;
      });
    }
    expect(await testcontainers()).not.toContain(container);
  });
});
