import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { Gateway, hashToken } from "@station-coding/gateway";
import { ScriptedDriver, script, startWorker } from "@station-coding/testkit/worker";
import type { GatewayEnv } from "./support/gateway-env.js";
import { TOKENS, problemOf, startGatewayEnv } from "./support/gateway-env.js";

let env: GatewayEnv;
const driver = new ScriptedDriver();
const extra: Gateway[] = [];
beforeAll(async () => {
  env = await startGatewayEnv();
  await startWorker(env, driver);
});
afterAll(async () => {
  await Promise.all(extra.map((g) => g.close()));
  await env?.close();
});

/** A second gateway on the same namespace with other settings. */
async function gatewayWith(options: Partial<Parameters<typeof Gateway.create>[0]>): Promise<string> {
  const gateway = Gateway.create({
    namespaces: [env.namespace],
    tokens: [{ name: "ci", sha256: hashToken(TOKENS.operator), role: "operator" }],
    ...options,
  });
  extra.push(gateway);
  return (await gateway.listen("127.0.0.1:0")).url;
}

const task = (taskID: string) => ({ taskID, prompt: script({ text: "ok" }) });

describe("authentication and roles", () => {
  it("answers 401 with WWW-Authenticate: Bearer and a problem to no token or a wrong one", async () => {
    for (const [token, error] of [
      [null, undefined],
      ["not-a-token", "invalid_token"],
      [`${TOKENS.operator}x`, "invalid_token"],
    ] as const) {
      const response = await env.api("/v1/tasks", { token });
      expect(response.status).toBe(401);
      const challenge = response.headers.get("www-authenticate") ?? "";
      expect(challenge).toMatch(/^Bearer /);
      if (error) expect(challenge).toContain(`error="${error}"`);
      const problem = await problemOf(response);
      expect(problem).toMatchObject({ status: 401, title: "Unauthorized", instance: "/v1/tasks" });
      expect(JSON.stringify(problem)).not.toContain("not-a-token");
    }
    const basic = await env.api("/v1/tasks", {
      token: null,
      headers: { Authorization: "Basic dXNlcjpwYXNz" },
    });
    expect(basic.status).toBe(401);
    expect(await problemOf(basic)).toMatchObject({ detail: expect.stringContaining("not a bearer token") });
  });

  it("lets a viewer read and refuses it every write with 403", async () => {
    const submitted = await env.api("/v1/tasks", { method: "POST", json: task("viewer-1") });
    expect(submitted.status).toBe(202);
    const viewer = { token: TOKENS.viewer };
    expect((await env.api("/v1/tasks/viewer-1", viewer)).status).toBe(200);
    expect((await env.api("/v1/tasks", viewer)).status).toBe(200);
    for (const [path, json] of [
      ["/v1/tasks", task("viewer-2")],
      ["/v1/tasks/viewer-1/cancel", {}],
      ["/v1/dead-letters/viewer-1/replay", {}],
      ["/v1/dead-letters/replay", {}],
    ] as const) {
      const response = await env.api(path, { ...viewer, method: "POST", json });
      expect(response.status, path).toBe(403);
      expect(await problemOf(response)).toMatchObject({
        detail: expect.stringContaining("dashboard is a viewer"),
      });
    }
    expect((await env.api("/v1/tasks/viewer-2", viewer)).status).toBe(404);
    // The operator beside it may.
    expect((await env.api("/v1/tasks/viewer-1/cancel", { method: "POST" })).status).toBe(202);
  });

  it("tells each token who it is on GET /v1/me (name, role, org), never the token itself", async () => {
    for (const [token, name, role] of [
      [TOKENS.operator, "ci", "operator"],
      [TOKENS.viewer, "dashboard", "viewer"],
      [TOKENS.admin, "root", "admin"],
    ] as const) {
      const response = await env.api("/v1/me", { token });
      expect(response.status).toBe(200);
      const text = await response.text();
      expect(JSON.parse(text)).toEqual({ name, role, orgs: [""] });
      expect(text).not.toContain(token);
    }
    expect((await env.api("/v1/me", { token: "not-a-token" })).status).toBe(401);
  });

  it("answers 404 for a task that does not exist and for an unknown route, as problems", async () => {
    for (const path of [
      "/v1/tasks/nope",
      "/v1/tasks/nope/result",
      "/v1/tasks/nope/events",
      "/v1/tasks/..%2F..",
      "/v1/nothing",
    ]) {
      const response = await env.api(path);
      expect(response.status, path).toBe(404);
      await problemOf(response);
    }
  });

  it("never writes a token to its log, its metrics or its errors", async () => {
    await env.api("/v1/tasks", { token: "leaky-guess-123" });
    await env.api("/v1/status");
    await env.api("/v1/status", { token: TOKENS.viewer });
    const metrics = await (await fetch(`${env.url}/metrics`)).text();
    expect(metrics).toMatch(/station_gateway_requests_total\{[^}]*token="ci"/);
    expect(metrics).toMatch(/station_gateway_requests_total\{[^}]*token="dashboard"/);
    const everything = `${env.gatewayLogs.join("\n")}\n${metrics}`;
    for (const secret of [...Object.values(TOKENS), "leaky-guess-123"])
      expect(everything).not.toContain(secret);
  });

  it("limits each token's rate with 429 and Retry-After, without slowing other tokens", async () => {
    const url = await gatewayWith({
      rateLimit: { rps: 0.5, burst: 3 },
      tokens: [
        { name: "ci", sha256: hashToken(TOKENS.operator), role: "operator" },
        { name: "other", sha256: hashToken(TOKENS.viewer), role: "viewer" },
      ],
    });
    const get = (token: string) =>
      fetch(`${url}/v1/status`, { headers: { Authorization: `Bearer ${token}` } });
    const statuses: number[] = [];
    for (let i = 0; i < 4; i++) statuses.push((await get(TOKENS.operator)).status);
    expect(statuses).toEqual([200, 200, 200, 429]);
    const limited = await get(TOKENS.operator);
    expect(limited.status).toBe(429);
    expect(Number(limited.headers.get("retry-after"))).toBeGreaterThanOrEqual(1);
    expect(await problemOf(limited)).toMatchObject({ status: 429 });
    expect((await get(TOKENS.viewer)).status).toBe(200);
  });

  it("serves health, readiness, the OpenAPI document and the docs without a token; /metrics with its token when set", async () => {
    for (const path of ["/healthz", "/readyz", "/openapi.json", "/docs", "/metrics"]) {
      expect((await fetch(`${env.url}${path}`)).status, path).toBe(200);
    }
    expect(await (await fetch(`${env.url}/readyz`)).json()).toEqual({ status: "ready", orgs: [""] });
    expect(await (await fetch(`${env.url}/docs`)).text()).toContain("POST /v1/tasks");
    const url = await gatewayWith({ metricsToken: { sha256: hashToken("scrape-me") } });
    const open = await fetch(`${url}/metrics`);
    expect(open.status).toBe(401);
    expect(open.headers.get("www-authenticate")).toMatch(/^Bearer/);
    const scraped = await fetch(`${url}/metrics`, { headers: { Authorization: "Bearer scrape-me" } });
    expect(scraped.status).toBe(200);
    const text = await scraped.text();
    expect(text).toContain("station_queue_depth");
    expect(text).toMatch(/station_workers\{org="",liveness="alive"\} 1/);
  });

  it("refuses to start with a token from the environment shorter than 16 characters, without showing it", () => {
    const build = (token: string) => () =>
      Gateway.create({
        namespaces: [env.namespace],
        tokens: [{ name: "short", tokenEnv: "GW_SHORT", role: "operator" }],
        env: { GW_SHORT: token },
      });
    expect(build("hunter2")).toThrow(
      "gateway.tokens[0] (short): the token in GW_SHORT has 7 characters; use at least 16",
    );
    expect(build("hunter2")).not.toThrow(/hunter2/);
    expect(build("a".repeat(16))).not.toThrow();
  });
});

describe("hostile requests", () => {
  const post = (body: string, headers: Record<string, string> = { "Content-Type": "application/json" }) =>
    env.api("/v1/tasks", { method: "POST", body, headers });

  it("answers a body that is not JSON with 400 and one that is not a task with 422 naming the field", async () => {
    const cases: [string, number, string][] = [
      ["{not json", 400, "body"],
      ["", 400, "body"],
      ["[1,2]", 422, "body"],
      ["42", 422, "body"],
      ["null", 422, "body"],
      [JSON.stringify({ prompt: 5 }), 422, "body.prompt"],
      [JSON.stringify({ prompt: "   " }), 422, "body.prompt"],
      [JSON.stringify({ prompt: "x", timeout: "soon" }), 422, "body.timeout"],
      [JSON.stringify({ prompt: "x", session: { name: "../etc" } }), 422, "body.session.name"],
      [JSON.stringify({ taskID: "a b", prompt: "x" }), 422, "body.taskID"],
      [JSON.stringify({ prompt: "x", org: "globex" }), 422, "body.org"],
      [JSON.stringify({ prompt: "x", op: "rm-rf" }), 422, "body.op"],
    ];
    for (const [body, status, field] of cases) {
      const response = await post(body);
      expect(response.status, body).toBe(status);
      expect(await problemOf(response), body).toMatchObject({ status, field });
    }
    const badKey = await env.api("/v1/tasks", {
      method: "POST",
      json: { prompt: "x" },
      headers: { "Idempotency-Key": "no/slashes" },
    });
    expect(badKey.status).toBe(422);
    expect(await problemOf(badKey)).toMatchObject({ field: "header.Idempotency-Key" });
    const clash = await env.api("/v1/tasks", {
      method: "POST",
      json: task("k1"),
      headers: { "Idempotency-Key": "k2" },
    });
    expect(clash.status).toBe(422);
  });

  it("answers a body over the limit with 413, declared or streamed, and keeps serving", async () => {
    const huge = JSON.stringify({ prompt: "x".repeat(2 * 1024 * 1024) });
    const declared = await post(huge);
    expect(declared.status).toBe(413);
    expect(await problemOf(declared)).toMatchObject({ status: 413, field: "body" });
    const chunks = new ReadableStream<Uint8Array>({
      start(controller) {
        for (let i = 0; i < 40; i++) controller.enqueue(new TextEncoder().encode("x".repeat(64 * 1024)));
        controller.close();
      },
    });
    const streamed = await env.api("/v1/tasks", {
      method: "POST",
      body: chunks,
      headers: { "Content-Type": "application/json" },
      duplex: "half",
    });
    expect(streamed.status).toBe(413);
    const after = await env.api("/v1/tasks", { method: "POST", json: task("after-hostile") });
    expect(after.status).toBe(202);
    const result = (await (await env.api("/v1/tasks/after-hostile/result?wait=30s")).json()) as {
      status: string;
    };
    expect(result.status).toBe("completed");
    expect((await fetch(`${env.url}/healthz`)).status).toBe(200);
  });

  it("refuses bad event resume points and bad task names in paths", async () => {
    await env.api("/v1/tasks", { method: "POST", json: task("sse-bad") });
    const bad = await env.api("/v1/tasks/sse-bad/events", { headers: { "Last-Event-ID": "-1" } });
    expect(bad.status).toBe(422);
    expect(await problemOf(bad)).toMatchObject({ field: "header.Last-Event-ID" });
    expect((await env.api("/v1/tasks/sse-bad/events?after=x")).status).toBe(422);
  });
});
