import { readFile } from "node:fs/promises";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { Validator } from "@seriousme/openapi-schema-validator";
import createClient from "openapi-fetch";
import type { TaskResult } from "@station-coding/protocol";
import { ScriptedDriver, script, startWorker } from "@station-coding/testkit/worker";
import { openApiDocument, openApiTypes } from "./support/openapi-document.js";
import type { paths } from "./support/openapi-types.js";
import type { GatewayEnv } from "./support/gateway-env.js";
import { TOKENS, readSse, startGatewayEnv } from "./support/gateway-env.js";

let env: GatewayEnv;
beforeAll(async () => {
  env = await startGatewayEnv();
  await startWorker(env, new ScriptedDriver());
});
afterAll(async () => {
  await env?.close();
});

describe("the OpenAPI document", () => {
  it("is a valid OpenAPI 3.1 document with every route and the wire schemas", async () => {
    const document = await openApiDocument();
    const validator = new Validator();
    const verdict = await validator.validate(document);
    expect(verdict.errors ?? []).toEqual([]);
    expect(verdict.valid).toBe(true);
    expect(validator.version).toBe("3.1");
    const paths = Object.keys(document.paths as object);
    for (const path of [
      "/v1/tasks",
      "/v1/tasks/{taskID}",
      "/v1/tasks/{taskID}/events",
      "/v1/tasks/{taskID}/result",
      "/v1/tasks/{taskID}/cancel",
      "/v1/tasks/{taskID}/artifacts",
      "/v1/artifacts/{key}",
      "/v1/me",
      "/v1/task-changes",
      "/v1/sessions",
      "/v1/workers",
      "/v1/status",
      "/v1/dead-letters",
      "/v1/dead-letters/{taskID}/replay",
      "/v1/dead-letters/replay",
      "/v1/stats",
      "/v1/costs",
      "/healthz",
      "/readyz",
      "/metrics",
    ]) {
      expect(paths).toContain(path);
    }
    const schemas = (document.components as { schemas: Record<string, { required?: string[] }> }).schemas;
    expect(schemas.Task?.required).toContain("taskID");
    expect(schemas.TaskSubmission?.required ?? []).not.toContain("taskID");
    expect(Object.keys(schemas)).toEqual(
      expect.arrayContaining(["TaskResult", "StreamEvent", "Problem", "TaskView"]),
    );
    // The served document is the same.
    expect(await (await fetch(`${env.url}/openapi.json`)).json()).toEqual(document);
  });

  it("matches the committed client types (npm run openapi-types regenerates them)", async () => {
    const committed = await readFile(new URL("./support/openapi-types.ts", import.meta.url), "utf8");
    expect(committed).toBe(await openApiTypes());
  });

  it("drives a typed openapi-fetch client that submits and follows a task", async () => {
    const client = createClient<paths>({
      baseUrl: env.url,
      headers: { Authorization: `Bearer ${TOKENS.operator}` },
    });
    const submitted = await client.POST("/v1/tasks", {
      params: { header: { "idempotency-key": "typed-1" } },
      body: { prompt: script({ text: "typed " }, { text: "client" }), session: { name: "typed" } },
    });
    expect(submitted.response.status).toBe(202);
    expect(submitted.data?.taskID).toBe("typed-1");
    const taskID = submitted.data!.taskID;

    const events = await client.GET("/v1/tasks/{taskID}/events", {
      params: { path: { taskID } },
      parseAs: "stream",
    });
    expect(events.response.status).toBe(200);
    const { events: streamed } = await readSse(new Response(events.data as ReadableStream));
    expect(streamed.at(-1)?.event).toBe("result");

    const result = await client.GET("/v1/tasks/{taskID}/result", {
      params: { path: { taskID }, query: { wait: "30s" } },
    });
    expect(result.response.status).toBe(200);
    expect(result.data).toMatchObject({ taskID, status: "completed" });
    expect((result.data as TaskResult).metrics.streamEvents).toBe(streamed.length - 1);

    const view = await client.GET("/v1/tasks/{taskID}", { params: { path: { taskID } } });
    expect(view.data).toMatchObject({ taskID, status: "completed", session: "typed" });
    const missing = await client.GET("/v1/tasks/{taskID}", { params: { path: { taskID: "nope" } } });
    expect(missing.response.status).toBe(404);
    expect(missing.error).toMatchObject({ status: 404, title: "Not Found" });
  });
});
