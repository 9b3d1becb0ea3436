// The OpenCode driver learns a task's org from the worker that serves it, not from the shape of
// its subjects: with names whose result subjects do not start with `org.<org>.coding.`, the
// station tools and the session export still use the org's own buckets.
import { Objm } from "@nats-io/obj";
import { connect } from "@nats-io/transport-node";
import type { NatsConnection } from "@nats-io/transport-node";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  AgentContextStore,
  TaskLookups,
  codingNames,
  ensureTopology,
  sessionExportKey,
} from "@station-coding/protocol";
import type { CodingNamesOptions } from "@station-coding/protocol";
import { NatsServer, tempDir, toolCallScenario, waitFor } from "@station-coding/testkit";
import { startOpenCode } from "@station-coding/testkit/worker";
import { CodingWorker } from "@station-coding/worker";

const overrides: Omit<CodingNamesOptions, "org"> = { subjects: { result: "tenants.{org}.results" } };
const names = codingNames({ ...overrides, org: "acme" });

let server: NatsServer;
let nc: NatsConnection;
let worker: CodingWorker | undefined;
let oc: Awaited<ReturnType<typeof startOpenCode>>;

beforeAll(async () => {
  server = await NatsServer.start();
  nc = await connect({ servers: server.url });
  await ensureTopology(nc, names);
  const workspaceDir = await tempDir("org-ws");
  oc = await startOpenCode(
    [
      toolCallScenario({
        match: "call station_kv_set",
        tool: "station_kv_set",
        arguments: { key: "favourite", value: { colour: "blue" } },
      }),
    ],
    { workspaceRoot: workspaceDir },
  );
  worker = await CodingWorker.start({
    driver: oc.driver,
    servers: server.url,
    orgs: ["acme"],
    names: overrides,
    workspaceDir,
    ackWait: 5_000,
    logLevel: "warn",
  });
}, 60_000);
afterAll(async () => {
  await worker?.stop();
  await oc?.close();
  await nc?.close();
  await server?.stop();
});

describe("an org's task with OpenCode, under names of another shape", () => {
  it("writes station_kv_set to the org's agent context and exports the session to the org's store", async () => {
    expect(names.resultSubject("t")).toBe("tenants.acme.results.t");
    nc.publish(
      names.taskSubject,
      JSON.stringify({
        taskID: "org-kv",
        agentID: "agent-1",
        session: { name: "acme-s" },
        prompt: "please call station_kv_set",
      }),
    );
    const lookups = await TaskLookups.create(nc, names);
    const result = await waitFor(() => lookups.result("org-kv"), { timeout: 60_000, message: "result" });
    expect(result.status, JSON.stringify(result)).toBe("completed");
    expect(result.org).toBe("acme");
    const context = await AgentContextStore.open(nc, names);
    expect((await context.get("agent-1", "favourite"))?.value).toEqual({ colour: "blue" });
    const store = await new Objm(nc).open(names.objectStore);
    expect((await store.getBlob(sessionExportKey("acme-s")))?.byteLength).toBeGreaterThan(0);
  }, 90_000);
});
