// Test support for the gateway: a real nats-server with the topology (the worker harness), a
// dispatcher, the gateway listening on a loopback port, and an HTTP client and SSE reader for it.
import { pino } from "pino";
import { CodingDispatcher } from "@station-coding/dispatcher";
import { Gateway, closeNamespace, hashToken, openNamespace } from "@station-coding/gateway";
import type { GatewayNamespace, GatewayOptions } from "@station-coding/gateway";
import type { Env } from "@station-coding/testkit/worker";
import { startEnv } from "@station-coding/testkit/worker";

/** The tokens every gateway test environment has, by role. */
export const TOKENS = {
  operator: "op-3f9c2d8e1b7a4c6d",
  viewer: "view-8a1b2c3d4e5f6a7b",
  admin: "admin-5e6f7a8b9c0d1e2f",
} as const;

/** A gateway on a real server. */
export interface GatewayEnv extends Env {
  gateway: Gateway;
  dispatcher: CodingDispatcher;
  namespace: GatewayNamespace;
  url: string;
  /** Gateway log lines (for the no-secret checks). */
  gatewayLogs: string[];
  /** A request to the gateway as `token` (operator by default; `null` sends none). */
  api(path: string, init?: RequestInit & { token?: string | null; json?: unknown }): Promise<Response>;
}

/** Starts nats-server, a dispatcher and the gateway (single-tenant unless `org`). */
export async function startGatewayEnv(
  options: { org?: string; gateway?: Partial<GatewayOptions> } = {},
): Promise<GatewayEnv> {
  const base = await startEnv(options.org);
  const gatewayLogs: string[] = [];
  const logger = pino({ level: "debug" }, { write: (line: string) => void gatewayLogs.push(line) });
  const dispatcher = await CodingDispatcher.connect({
    servers: base.server.url,
    ...(options.org !== undefined ? { org: options.org } : {}),
    logger,
  });
  const namespace = await openNamespace(dispatcher, logger);
  const org = options.org;
  const gateway = Gateway.create({
    namespaces: [namespace],
    tokens: [
      { name: "ci", sha256: hashToken(TOKENS.operator), role: "operator", ...(org ? { org } : {}) },
      { name: "dashboard", tokenEnv: "GW_TEST_VIEWER", role: "viewer", ...(org ? { org } : {}) },
      { name: "root", sha256: hashToken(TOKENS.admin), role: "admin" },
    ],
    env: { GW_TEST_VIEWER: TOKENS.viewer },
    logger,
    heartbeat: 200,
    ...options.gateway,
  });
  const { url } = await gateway.listen("127.0.0.1:0");
  const closeBase = base.close.bind(base);
  return Object.assign(base, {
    gateway,
    dispatcher,
    namespace,
    url,
    gatewayLogs,
    async api(path: string, init: RequestInit & { token?: string | null; json?: unknown } = {}) {
      const { token = TOKENS.operator, json, headers, ...rest } = init;
      const h = new Headers(headers);
      if (token !== null) h.set("Authorization", `Bearer ${token}`);
      if (json !== undefined) h.set("Content-Type", "application/json");
      return fetch(`${url}${path}`, {
        ...rest,
        headers: h,
        ...(json !== undefined ? { body: JSON.stringify(json) } : {}),
      });
    },
    async close() {
      await gateway.close();
      await closeNamespace(namespace);
      await dispatcher.close();
      await closeBase();
    },
  });
}

/** One Server-Sent Event as the wire carried it. */
export interface SseEvent {
  id?: string;
  event?: string;
  data: string;
}

/**
 * Reads an SSE response: calls `onEvent` per event (return true to stop reading and cancel the
 * response), counts comment lines; resolves when the stream ends or is stopped.
 */
export async function readSse(
  response: Response,
  onEvent: (event: SseEvent) => boolean | void = () => false,
): Promise<{ events: SseEvent[]; comments: number; ended: boolean }> {
  const events: SseEvent[] = [];
  let comments = 0;
  const reader = response.body!.pipeThrough(new TextDecoderStream()).getReader();
  let buffer = "";
  for (;;) {
    const { value, done } = await reader.read();
    if (done) return { events, comments, ended: true };
    buffer += value;
    let cut: number;
    while ((cut = buffer.indexOf("\n\n")) >= 0) {
      const block = buffer.slice(0, cut);
      buffer = buffer.slice(cut + 2);
      const event: SseEvent = { data: "" };
      const data: string[] = [];
      let any = false;
      for (const line of block.split("\n")) {
        if (line.startsWith(":")) {
          comments += 1;
          continue;
        }
        const i = line.indexOf(":");
        const field = i < 0 ? line : line.slice(0, i);
        const v = i < 0 ? "" : line.slice(i + 1).replace(/^ /, "");
        any = true;
        if (field === "id") event.id = v;
        else if (field === "event") event.event = v;
        else if (field === "data") data.push(v);
      }
      if (!any) continue;
      event.data = data.join("\n");
      events.push(event);
      if (onEvent(event) === true) {
        await reader.cancel();
        return { events, comments, ended: false };
      }
    }
  }
}

/** The problem document of an error response, checking its media type. */
export async function problemOf(response: Response): Promise<Record<string, unknown>> {
  const type = response.headers.get("content-type") ?? "";
  if (!type.startsWith("application/problem+json")) {
    throw new Error(`expected application/problem+json, got ${type}: ${await response.text()}`);
  }
  return (await response.json()) as Record<string, unknown>;
}
