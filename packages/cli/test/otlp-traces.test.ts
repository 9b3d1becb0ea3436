// Traces leave the shipped binaries: the built `station-coding worker` (real OpenCode, scripted
// model) and `station-coding submit` as child processes, exporting over OTLP/HTTP (JSON) to a
// small receiver on loopback. One trace must run from the submit's span through the worker's task
// span to its tool call.
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

describe("OTLP trace export from the shipped binaries", () => {
  it("exports one trace from `submit` through the worker's task span to its tool call", async () => {
    const otel = {
      OTEL_EXPORTER_OTLP_ENDPOINT: receiver.url,
      OTEL_EXPORTER_OTLP_PROTOCOL: "http/json",
      TMPDIR: join(dir, "tmp"),
    };
    worker = cli.spawn(
      ["worker", "--workspace-dir", join(dir, "workspaces"), "--opencode-config", join(dir, "opencode.json")],
      { env: otel },
    );
    await waitFor(() => /running \(opencode at/.test(worker!.stderr) || worker!.child.exitCode !== null, {
      timeout: 60_000,
      message: "the worker to start",
    });
    expect(worker.child.exitCode, worker.stderr).toBeNull();

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
});
