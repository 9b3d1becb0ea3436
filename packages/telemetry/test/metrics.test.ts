import { afterEach, describe, expect, it } from "vitest";
import { parseListen } from "@station-coding/telemetry";
import { StationMetrics, startMetricsServer } from "@station-coding/telemetry/metrics";
import type { MetricsServer } from "@station-coding/telemetry/metrics";
import { TaskIndexView } from "@station-coding/protocol";
import type { TaskResult } from "@station-coding/protocol";

function result(fields: Partial<TaskResult> & Pick<TaskResult, "status">): TaskResult {
  return {
    taskID: "t1",
    session: { name: "s", opencodeID: "ses", messageCount: 1 },
    workspace: { name: "s", path: "/w" },
    metrics: {
      duration: 2500,
      toolCalls: 1,
      streamEvents: 4,
      tokens: { input: 100, output: 20, reasoning: 0, cacheRead: 7, cacheWrite: 0 },
      cost: 0.25,
      model: "claude",
      provider: "anthropic",
    },
    ...fields,
  };
}

let server: MetricsServer | undefined;
afterEach(async () => {
  await server?.close();
  server = undefined;
});

describe("StationMetrics", () => {
  it("counts results by org and status, their duration, and tokens and cost by model", async () => {
    const metrics = new StationMetrics({ processMetrics: false, labels: { worker: "w1" } });
    metrics.recordResult(result({ status: "completed", org: "acme" }));
    metrics.recordResult(result({ status: "completed", org: "acme" }));
    metrics.recordResult(result({ status: "error" }));
    const text = await metrics.text();
    expect(text).toContain('station_coding_tasks_total{org="acme",status="completed",worker="w1"} 2');
    expect(text).toContain('station_coding_tasks_total{org="",status="error",worker="w1"} 1');
    expect(text).toContain(
      'station_coding_task_duration_seconds_bucket{le="5",worker="w1",org="acme",status="completed"} 2',
    );
    expect(text).toContain(
      'station_coding_tokens_total{org="acme",model="anthropic/claude",kind="input",worker="w1"} 200',
    );
    expect(text).toContain('kind="cache_read",worker="w1"} 14');
    expect(text).not.toContain('kind="reasoning"');
    expect(text).toContain('station_coding_cost_total{org="acme",model="anthropic/claude",worker="w1"} 0.5');
  });
});

describe("StationMetrics.trackTaskIndex", () => {
  it("reports each org's task index by status at each scrape", async () => {
    const metrics = new StationMetrics({ processMetrics: false });
    const acme = new TaskIndexView();
    acme.apply({ taskID: "a1", status: "running" });
    acme.apply({ taskID: "a2", status: "completed" });
    metrics.trackTaskIndex("acme", acme);
    metrics.trackTaskIndex(undefined, new TaskIndexView());
    expect(await metrics.text()).toContain('station_coding_index_tasks{org="acme",status="running"} 1');
    acme.apply({ taskID: "a1", status: "error" });
    const text = await metrics.text();
    expect(text).toContain('station_coding_index_tasks{org="acme",status="running"} 0');
    expect(text).toContain('station_coding_index_tasks{org="acme",status="error"} 1');
    expect(text).toContain('station_coding_index_tasks{org="",status="queued"} 0');
  });
});

describe("startMetricsServer", () => {
  it("serves /metrics and a /healthz that follows the health check, over real HTTP on loopback", async () => {
    const metrics = new StationMetrics();
    metrics.recordResult(result({ status: "completed" }));
    let healthy = true;
    server = await startMetricsServer({
      listen: "127.0.0.1:0",
      metrics,
      health: () => ({ healthy, detail: healthy ? "nats: connected" : "nats: disconnected" }),
    });
    const scrape = await fetch(`${server.url}/metrics`);
    expect(scrape.status).toBe(200);
    expect(scrape.headers.get("content-type")).toMatch(/^text\/plain; version=0\.0\.4/);
    const body = await scrape.text();
    expect(body).toContain("station_coding_tasks_total");
    expect(body).toContain("process_cpu_seconds_total");
    const ok = await fetch(`${server.url}/healthz`);
    expect([ok.status, await ok.text()]).toEqual([200, "ok: nats: connected\n"]);
    healthy = false;
    const down = await fetch(`${server.url}/healthz`);
    expect([down.status, await down.text()]).toEqual([503, "unhealthy: nats: disconnected\n"]);
    expect((await fetch(`${server.url}/other`)).status).toBe(404);
    expect((await fetch(`${server.url}/metrics`, { method: "POST" })).status).toBe(405);
  });

  it("names a bad listen address, and a port in use", async () => {
    expect(() => parseListen("localhost")).toThrow(/listen address "localhost": must be HOST:PORT/);
    expect(() => parseListen("1.2.3.4:70000")).toThrow(/must be HOST:PORT/);
    expect(parseListen("[::1]:9464")).toEqual({ host: "::1", port: 9464 });
    expect(parseListen(":9464")).toEqual({ host: "0.0.0.0", port: 9464 });
    server = await startMetricsServer({
      listen: "127.0.0.1:0",
      metrics: new StationMetrics({ processMetrics: false }),
      health: () => ({ healthy: true, detail: "" }),
    });
    await expect(
      startMetricsServer({
        listen: `127.0.0.1:${server.port}`,
        metrics: new StationMetrics({ processMetrics: false }),
        health: () => ({ healthy: true, detail: "" }),
      }),
    ).rejects.toThrow(/EADDRINUSE/);
  });
});
