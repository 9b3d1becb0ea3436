// Long-lived requests are a resource: one token cannot hold every stream of the gateway, and a
// client that stops reading is cut off instead of holding its follower and buffers forever.
import { connect } from "node:net";
import type { Socket } from "node:net";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { waitFor } from "@station-coding/testkit";
import { ScriptedDriver, script, startWorker } from "@station-coding/testkit/worker";
import type { GatewayEnv } from "./support/gateway-env.js";
import { TOKENS, problemOf, readSse, startGatewayEnv } from "./support/gateway-env.js";

let env: GatewayEnv;
beforeAll(async () => {
  env = await startGatewayEnv({ gateway: { streams: { perToken: 2, stall: 8000 } } });
  await startWorker(env, new ScriptedDriver(), { concurrency: 2 });
});
afterAll(async () => {
  await env?.close();
});

async function sseClients(): Promise<number> {
  const text = await (await env.api("/metrics", { token: null })).text();
  return Number(/^station_gateway_sse_clients\{org=""\} (\d+)$/m.exec(text)?.[1] ?? "0");
}

async function runTask(prompt: string): Promise<string> {
  const accepted = await env.api("/v1/tasks", { method: "POST", json: { prompt } });
  expect(accepted.status).toBe(202);
  const { taskID } = (await accepted.json()) as { taskID: string };
  expect((await env.api(`/v1/tasks/${taskID}/result?wait=60s`)).status).toBe(200);
  return taskID;
}

describe("open streams per token", () => {
  it("answers 429 naming the limit past a token's share, serves other tokens beside it, and frees the slot on close", async () => {
    const taskID = await runTask(script({ text: "done" }));
    const held = [new AbortController(), new AbortController()];
    for (const c of held) {
      const response = await env.api("/v1/task-changes", { signal: c.signal });
      expect(response.status).toBe(200);
    }
    // A third stream, and a long-poll, of the same token: refused, with what to do.
    const third = await env.api("/v1/task-changes");
    expect(third.status).toBe(429);
    expect(third.headers.get("retry-after")).toBe("5");
    expect(third.headers.get("x-content-type-options")).toBe("nosniff");
    const problem = await problemOf(third);
    expect(problem.detail).toContain("gateway.streams.perToken");
    expect(problem.detail).not.toContain(TOKENS.operator);
    // A result already there is answered at once: no wait, no slot.
    expect((await env.api(`/v1/tasks/${taskID}/result?wait=5s`)).status).toBe(200);
    const running = await env.api("/v1/tasks", {
      method: "POST",
      json: { prompt: script({ sleep: 60_000 }) },
    });
    const slow = ((await running.json()) as { taskID: string }).taskID;
    expect((await env.api(`/v1/tasks/${slow}/result?wait=5s`)).status).toBe(429);
    // Another token is not held back by this one.
    const viewer = new AbortController();
    expect((await env.api("/v1/task-changes", { token: TOKENS.viewer, signal: viewer.signal })).status).toBe(
      200,
    );
    // Closing one frees its slot.
    held[0]!.abort();
    await waitFor(async () => (await env.api(`/v1/tasks/${slow}/result?wait=50ms`)).status === 202);
    for (const c of [...held, viewer]) c.abort();
    await env.api(`/v1/tasks/${slow}/cancel`, { method: "POST" });
    await waitFor(async () => (await sseClients()) === 0);
  });
});

/** An SSE request on a raw socket that reads nothing: the client that stopped reading. */
function stalledRequest(path: string): Promise<Socket> {
  const { hostname, port } = new URL(env.url);
  return new Promise((resolve, reject) => {
    const socket = connect({ host: hostname, port: Number(port) }, () => {
      socket.write(
        `GET ${path} HTTP/1.1\r\nHost: ${hostname}\r\nAuthorization: Bearer ${TOKENS.operator}\r\n\r\n`,
      );
      socket.pause();
      resolve(socket);
    });
    socket.once("error", reject);
  });
}

describe("a client that stops reading", () => {
  it("is cut off once its writes wait past gateway.streams.stall, while a reader beside it gets every event", async () => {
    // 10 text events of about 1 MB (text deltas are merged into one event up to the message size,
    // a tool call ends each): far more than the socket buffers between the gateway and a client.
    const steps = Array.from({ length: 10 }, () => [
      { deltas: { count: 110, text: "x".repeat(10_000) } },
      { tool: { name: "bash" } },
    ]).flat();
    const taskID = await runTask(script(...steps));
    const stalled = await stalledRequest(`/v1/tasks/${taskID}/events`);
    const closed = new Promise<void>((resolve) => stalled.once("close", () => resolve()));
    stalled.on("error", () => undefined);

    const reader = await env.api(`/v1/tasks/${taskID}/events`, { token: TOKENS.viewer });
    const { events, ended } = await readSse(reader);
    expect(ended).toBe(true);
    expect(events.at(-1)?.event).toBe("result");
    const texts = events.filter((e) => e.event === "text");
    // The worker gives up an event whose publish keeps failing (a loaded server can time out 1 MB
    // publishes): what the stream holds is what the reader must get, in order, at least half of it.
    expect(texts.length).toBeGreaterThanOrEqual(5);
    const seqs = events.filter((e) => e.id !== undefined).map((e) => Number(e.id));
    expect(seqs).toEqual([...seqs].sort((a, b) => a - b));

    await waitFor(() => env.gatewayLogs.some((line) => line.includes("the client stopped reading")));
    await waitFor(async () => (await sseClients()) === 0);
    // What the stalled client gets once it reads again: part of the stream, never the result.
    let received = "";
    stalled.on("data", (chunk: Buffer) => {
      received += chunk.toString("latin1");
    });
    stalled.resume();
    await closed;
    expect(received).toContain("event: text");
    expect(received).not.toContain("event: result");
    // The slot came back: the same token may open streams again.
    const again = new AbortController();
    expect((await env.api("/v1/task-changes", { signal: again.signal })).status).toBe(200);
    again.abort();
  }, 120_000);
});
