// Traces leave the shipped binaries: the built `station-coding worker` (real OpenCode, scripted
// model) and `station-coding submit` as child processes, exporting over OTLP/HTTP (JSON) to a
// small receiver on loopback. One trace must run from the submit's span through the worker's task
// span to its tool call; and, through `station-coding serve`, from an HTTP caller's traceparent
// through the gateway's server and dispatch spans to the worker's.
import { createServer } from "node:http";
import type { Server } from "node:http";
import type { AddressInfo } from "node:net";
import { mkdir, rm, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  NatsServer,
  ScriptedModelServer,
  createFileScenario,
  scriptedProviderConfig,
  tempDir,
  uniqueName,
  waitFor,
} from "@station-coding/testkit";
import { Cli } from "./support/cli.js";
import type { CliProcess } from "./support/cli.js";

/** A span as the receiver got it, with the service that exported it. */
interface ReceivedSpan {
  service: string;
  traceId: string;
  spanId: string;
  parentSpanId: string;
  name: string;
  events: string[];
  attributes: Record<string, unknown>;
}

interface OtlpAttribute {
  key: string;
  value: { stringValue?: string; intValue?: string | number; doubleValue?: number; boolValue?: boolean };
}

const attrs = (list: OtlpAttribute[] = []) =>
  Object.fromEntries(list.map((a) => [a.key, Object.values(a.value)[0]]));

/** An OTLP/HTTP JSON trace receiver on loopback. */
async function startReceiver(): Promise<{
  url: string;
  spans: ReceivedSpan[];
  contentTypes: string[];
  server: Server;
}> {
  const spans: ReceivedSpan[] = [];
  const contentTypes: string[] = [];
  const server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on("data", (c: Buffer) => chunks.push(c));
    req.on("end", () => {
      if (req.method !== "POST" || req.url !== "/v1/traces") {
        res.writeHead(404).end();
        return;
      }
      contentTypes.push(req.headers["content-type"] ?? "");
      const body = JSON.parse(Buffer.concat(chunks).toString()) as {
        resourceSpans: {
          resource: { attributes: OtlpAttribute[] };
          scopeSpans: {
            spans: {
              traceId: string;
              spanId: string;
              parentSpanId?: string;
              name: string;
              events?: { name: string }[];
              attributes?: OtlpAttribute[];
            }[];
          }[];
        }[];
      };
      for (const rs of body.resourceSpans) {
        const service = String(attrs(rs.resource.attributes)["service.name"]);
        for (const ss of rs.scopeSpans) {
          for (const s of ss.spans) {
            spans.push({
              service,
              traceId: s.traceId,
              spanId: s.spanId,
              parentSpanId: s.parentSpanId ?? "",
              name: s.name,
              events: (s.events ?? []).map((e) => e.name),
              attributes: attrs(s.attributes),
            });
          }
        }
      }
      res.writeHead(200, { "Content-Type": "application/json" }).end("{}");
    });
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const { port } = server.address() as AddressInfo;
  return { url: `http://127.0.0.1:${port}`, spans, contentTypes, server };
}

let nats: NatsServer;
let model: ScriptedModelServer;
let receiver: Awaited<ReturnType<typeof startReceiver>>;
let dir: string;
let cli: Cli;
let worker: CliProcess | undefined;
const otelEnv = () => ({
  OTEL_EXPORTER_OTLP_ENDPOINT: receiver.url,
  OTEL_EXPORTER_OTLP_PROTOCOL: "http/json",
  TMPDIR: join(dir, "tmp"),
});

beforeAll(async () => {
  dir = await tempDir("otlp");
  nats = await NatsServer.start();
  model = await ScriptedModelServer.start({ scenarios: [createFileScenario({ match: /[\s\S]*/ })] });
  receiver = await startReceiver();
  await mkdir(join(dir, "workspaces"));
  await mkdir(join(dir, "tmp"));
  await writeFile(join(dir, "opencode.json"), JSON.stringify(scriptedProviderConfig(model.url)));
  cli = new Cli(nats.url);
}, 60_000);
afterAll(async () => {
  await cli?.killAll();
  await new Promise<void>((resolve) => receiver?.server.close(() => resolve()));
  await model?.stop();
  await nats?.stop();
  if (dir) await rm(dir, { recursive: true, force: true });
});

/** The built `station-coding worker` with the scripted model, exporting to the receiver. */
async function startWorker(env: Record<string, string>): Promise<CliProcess> {
  const started = cli.spawn(
    ["worker", "--workspace-dir", join(dir, "workspaces"), "--opencode-config", join(dir, "opencode.json")],
    { env },
  );
  await waitFor(() => /running \(opencode at/.test(started.stderr) || started.child.exitCode !== null, {
    timeout: 60_000,
    message: "the worker to start",
  });
  expect(started.child.exitCode, started.stderr).toBeNull();
  return started;
}

describe("OTLP trace export from the shipped binaries", () => {
  it("exports one trace from `submit` through the worker's task span to its tool call", async () => {
    const otel = otelEnv();
    worker = await startWorker(otel);

    const taskID = uniqueName("traced");
    const submit = await cli.run(["submit", "create hello.txt", "--task-id", taskID], {
      env: otel,
      timeout: 60_000,
    });
    expect(submit.code, submit.stderr).toBe(0);

    // SIGTERM: the worker drains, and its last spans are exported before it exits.
    worker.child.kill("SIGTERM");
    const exit = await worker.wait(30_000);
    expect(exit.code, exit.stderr).toBe(0);

    const dispatch = receiver.spans.find(
      (s) => s.name === "station.dispatch" && s.attributes["station.task_id"] === taskID,
    );
    expect(dispatch?.service).toBe("station-coding-cli");
    const task = receiver.spans.find(
      (s) => s.name === "opencode.task" && s.attributes["station.task_id"] === taskID,
    );
    expect(task).toMatchObject({
      service: "station-coding-worker",
      traceId: dispatch!.traceId,
      parentSpanId: dispatch!.spanId,
    });
    expect(task!.events).toEqual(expect.arrayContaining(["tool_start", "tool_end"]));
    const tool = receiver.spans.find(
      (s) => s.name === "opencode.tool.write" && s.traceId === dispatch!.traceId,
    );
    expect(tool).toMatchObject({ service: "station-coding-worker", parentSpanId: task!.spanId });
    expect(receiver.contentTypes.every((t) => t.startsWith("application/json"))).toBe(true);
  });
  it("exports one trace from the caller's request through `serve` and the worker to its tool call", async () => {
    const otel = otelEnv();
    const token = "gateway-trace-token";
    worker = await startWorker(otel);
    const serve = cli.spawn(["serve", "--listen", "127.0.0.1:0"], {
      env: { ...otel, STATION_GATEWAY_TOKEN: token },
    });
    const base = await waitFor(
      () => {
        if (serve.child.exitCode !== null) throw new Error(`serve exited:\n${serve.stderr}`);
        return /listening on (http:\/\/\S+)/.exec(serve.stdout)?.[1];
      },
      { timeout: 30_000, message: "station-coding serve to listen" },
    );

    // The caller's own trace: its span is the parent of the gateway's server span.
    const callerTrace = "4bf92f3577b34da6a3ce929d0e0e4736";
    const callerSpan = "00f067aa0ba902b7";
    const taskID = uniqueName("gateway-traced");
    const headers = { Authorization: `Bearer ${token}`, "Content-Type": "application/json" };
    const submitted = await fetch(`${base}/v1/tasks`, {
      method: "POST",
      headers: { ...headers, traceparent: `00-${callerTrace}-${callerSpan}-01` },
      body: JSON.stringify({ taskID, prompt: "create hello.txt" }),
    });
    expect(submitted.status, await submitted.clone().text()).toBe(202);
    const result = await waitFor(
      async () => {
        const res = await fetch(`${base}/v1/tasks/${taskID}/result?wait=5s`, { headers });
        return res.status === 200 ? ((await res.json()) as { status: string }) : undefined;
      },
      { timeout: 60_000, message: "the task's result over HTTP" },
    );
    expect(result.status).toBe("completed");

    // SIGTERM both: each exports its last spans before it exits.
    serve.child.kill("SIGTERM");
    worker.child.kill("SIGTERM");
    expect((await serve.wait(30_000)).code, serve.stderr).toBe(0);
    expect((await worker.wait(30_000)).code, worker.stderr).toBe(0);

    const inTrace = receiver.spans.filter((s) => s.traceId === callerTrace);
    const server = inTrace.find((s) => s.name === "POST /v1/tasks");
    expect(server).toMatchObject({ service: "station-coding-gateway", parentSpanId: callerSpan });
    const dispatch = inTrace.find(
      (s) => s.name === "station.dispatch" && s.attributes["station.task_id"] === taskID,
    );
    expect(dispatch).toMatchObject({ service: "station-coding-gateway", parentSpanId: server!.spanId });
    const task = inTrace.find((s) => s.name === "opencode.task");
    expect(task).toMatchObject({ service: "station-coding-worker", parentSpanId: dispatch!.spanId });
    const tool = inTrace.find((s) => s.name === "opencode.tool.write");
    expect(tool).toMatchObject({ service: "station-coding-worker", parentSpanId: task!.spanId });
  });
});
