import { setMaxListeners } from "node:events";
import type { AddressInfo } from "node:net";
import type { Server } from "node:http";
import { serve } from "@hono/node-server";
import type { ServerType } from "@hono/node-server";
import { OpenAPIHono } from "@hono/zod-openapi";
import type { Context } from "hono";
import { ErrorCodes, StationError, parseDuration } from "@station-coding/protocol";
import { parseListen } from "@station-coding/telemetry";
import type { Logger } from "pino";
import { pino } from "pino";
import type { Registry } from "prom-client";
import { TokenTable, secretDigest, tokenMatches, unauthorized } from "./auth.js";
import type { GatewayConfig, GatewayTokenConfig } from "./config.js";
import { limitBody } from "./body-limit.js";
import { registerConsoleRoutes } from "./console-routes.js";
import { renderDocsPage } from "./docs-page.js";
import { registerEventRoutes, registerTaskChangeRoutes } from "./event-routes.js";
import { GatewayMetrics } from "./metrics.js";
import type { GatewayNamespace } from "./namespaces.js";
import { Namespaces } from "./namespaces.js";
import { registerNamespaceRoutes } from "./namespace-routes.js";
import { registerOpenApi } from "./openapi.js";
import { HttpProblem, PROBLEM_JSON, toProblem } from "./problem.js";
import { RateLimiter } from "./rate-limit.js";
import type { GatewayEnv, RouteDeps } from "./route-context.js";
import { registerStatsRoutes } from "./stats-routes.js";
import { DEFAULT_STREAM_LIMITS, StreamSlots } from "./stream-guard.js";
import { registerTaskRoutes } from "./task-routes.js";

/** Default `listen` address: loopback only. */
export const DEFAULT_LISTEN = "127.0.0.1:8080";

/** Options of {@link Gateway.create}: the station.yaml `gateway:` keys plus what the process supplies. */
export interface GatewayOptions extends Omit<GatewayConfig, "tokens" | "listen"> {
  /** The namespaces served, each with its own dispatcher (connection) and task index view. */
  namespaces: GatewayNamespace[];
  /** The bearer tokens. An empty list refuses every /v1 request. */
  tokens: GatewayTokenConfig[];
  /** Where `tokenEnv` values are read from. @default process.env */
  env?: NodeJS.ProcessEnv;
  /** Structured logger (tokens never reach it). @default a silent pino logger */
  logger?: Logger;
  /** Registry to add the gateway's metrics to (e.g. the process's). @default a new one */
  registry?: Registry;
  /** Serve the web console at `/` (docs/console.md). @default true */
  console?: boolean;
}

/**
 * The HTTP/SSE gateway: an HTTP API (Hono) over the dispatcher library, one dispatcher per
 * namespace served, with bearer tokens, roles, per-token rate limits, a body limit, RFC 9457
 * errors, an OpenAPI 3.1 document generated from the wire schemas, and Prometheus metrics.
 *
 * @example
 * const gateway = Gateway.create({ namespaces: [{ org: undefined, dispatcher }], tokens });
 * const { url } = await gateway.listen("127.0.0.1:8080");
 */
export class Gateway {
  /** The Hono application (its `fetch` answers requests without a socket). */
  readonly app: OpenAPIHono<GatewayEnv>;
  readonly metrics: GatewayMetrics;
  private readonly closer = new AbortController();
  private server: ServerType | undefined;

  private constructor(
    private readonly options: GatewayOptions,
    private readonly logger: Logger,
  ) {
    // Every open event stream listens for the gateway closing.
    setMaxListeners(0, this.closer.signal);
    const tokens = new TokenTable(options.tokens, options.env ?? process.env);
    const namespaces = new Namespaces(options.namespaces);
    for (const org of tokens.orgs) {
      if (!options.namespaces.some((ns) => ns.org === org)) {
        throw new StationError(
          ErrorCodes.InvalidConfig,
          `gateway.tokens: org ${org} is named by a token but not served`,
        );
      }
    }
    const metricsDigest =
      options.metricsToken !== undefined
        ? secretDigest("gateway.metricsToken", options.metricsToken, options.env ?? process.env)
        : undefined;
    const limiter = new RateLimiter({
      rps: options.rateLimit?.rps ?? 20,
      burst: options.rateLimit?.burst ?? 100,
    });
    const maxBodyBytes = options.maxBodyBytes ?? 1024 * 1024;
    this.metrics = new GatewayMetrics(options.namespaces, logger, options.registry);
    const deps: RouteDeps = {
      namespaces,
      metrics: this.metrics,
      logger,
      heartbeatMs: parseDuration("gateway.heartbeat", options.heartbeat ?? "15s"),
      maxWaitMs: parseDuration("gateway.maxWait", options.maxWait ?? "5m"),
      streams: new StreamSlots({
        perToken: options.streams?.perToken ?? DEFAULT_STREAM_LIMITS.perToken,
        total: options.streams?.total ?? DEFAULT_STREAM_LIMITS.total,
      }),
      stallMs: parseDuration(
        "gateway.streams.stall",
        options.streams?.stall ?? DEFAULT_STREAM_LIMITS.stallMs,
      ),
      closing: this.closer.signal,
    };

    const app = new OpenAPIHono<GatewayEnv>();
    this.app = app;
    app.onError((err, c) => this.problemResponse(c, err));
    app.notFound((c) =>
      this.problemResponse(
        c,
        new HttpProblem(404, "not-found", `${c.req.method} ${c.req.path}: no such route`),
      ),
    );

    // Accounting first, so that every answer (401, 429 and 413 included) is counted and logged.
    app.use("*", async (c, next) => {
      const started = performance.now();
      await next();
      // No answer of the gateway is to be read as anything but its declared type (errors too).
      c.res.headers.set("X-Content-Type-Options", "nosniff");
      const route = c.req.routePath === "/*" || c.req.routePath === "*" ? "unmatched" : c.req.routePath;
      const token = c.get("principal")?.name ?? "";
      const status = String(c.res.status);
      this.metrics.requests.inc({ method: c.req.method, route, status, token });
      this.metrics.duration.observe({ method: c.req.method, route }, (performance.now() - started) / 1000);
      logger.debug(
        {
          method: c.req.method,
          route,
          status: c.res.status,
          token,
          ms: Math.round(performance.now() - started),
        },
        "request",
      );
    });

    const render = registerOpenApi(app as unknown as OpenAPIHono<never>);
    app.get("/healthz", (c) => c.json({ status: "ok" as const }));
    app.get("/readyz", async (c) => {
      const problems = await Promise.all(options.namespaces.map((ns) => notReady(ns)));
      const first = problems.find((p) => p !== undefined);
      if (first !== undefined) throw new HttpProblem(503, "not-ready", first);
      return c.json({ status: "ready" as const, orgs: options.namespaces.map((ns) => ns.org ?? "") });
    });
    app.get("/openapi.json", (c) => c.json(render()));
    app.get("/docs", (c) => c.html(renderDocsPage(render())));
    if (options.console !== false) registerConsoleRoutes(app);
    app.get("/metrics", async (c) => {
      if (metricsDigest && !tokenMatches(c.req.header("authorization"), metricsDigest)) {
        throw unauthorized("/metrics needs the metrics token (gateway.metricsToken)");
      }
      const registry = this.metrics.registry;
      return c.body(await registry.metrics(), 200, { "Content-Type": registry.contentType });
    });

    app.use("/v1/*", async (c, next) => {
      const principal = tokens.authenticate(c.req.header("authorization"));
      c.set("principal", principal);
      const wait = limiter.take(principal.name);
      if (wait > 0) {
        throw new HttpProblem(
          429,
          "rate-limited",
          `token ${principal.name} is over its rate limit (gateway.rateLimit); retry after ${wait}s`,
          {},
          { "Retry-After": String(wait) },
        );
      }
      await next();
    });
    app.use("/v1/*", limitBody(maxBodyBytes));
    registerTaskRoutes(app, deps);
    registerEventRoutes(app, deps);
    registerTaskChangeRoutes(app, deps);
    registerNamespaceRoutes(app, deps);
    registerStatsRoutes(app, deps);
  }

  /** Builds the gateway (nothing listens until {@link listen}). */
  static create(options: GatewayOptions): Gateway {
    const logger = options.logger ?? pino({ level: "silent" });
    return new Gateway(options, logger);
  }

  /** Answers a request without a socket (tests, embedding). */
  fetch(request: Request): Promise<Response> {
    return Promise.resolve(this.app.fetch(request));
  }

  /** Listens on `HOST:PORT` (port 0: any free port); resolves with the base URL once listening. */
  async listen(listen: string = DEFAULT_LISTEN): Promise<{ url: string; host: string; port: number }> {
    const { host, port } = parseListen(listen);
    const server = await new Promise<ServerType>((resolve, reject) => {
      const s = serve({ fetch: this.app.fetch, hostname: host, port }, () => resolve(s));
      s.once("error", reject);
    });
    this.server = server;
    const address = server.address() as AddressInfo;
    const shown = address.family === "IPv6" ? `[${address.address}]` : address.address;
    const url = `http://${shown}:${address.port}`;
    this.logger.info(
      { url, namespaces: this.options.namespaces.map((ns) => ns.org ?? "") },
      "gateway listening",
    );
    return { url, host: address.address, port: address.port };
  }

  /** Ends every event stream, stops listening and waits for open requests to end. Idempotent. */
  async close(): Promise<void> {
    this.closer.abort();
    const server = this.server as Server | undefined;
    this.server = undefined;
    if (!server) return;
    await new Promise<void>((resolve) => {
      server.close(() => resolve());
      server.closeIdleConnections();
      setTimeout(() => server.closeAllConnections(), 2_000).unref();
    });
    this.logger.info("gateway closed");
  }

  private problemResponse(c: Context, err: unknown): Response {
    const problem = toProblem(err);
    if (problem.status >= 500) {
      this.logger.error(
        {
          method: c.req.method,
          path: c.req.path,
          status: problem.status,
          err: err instanceof Error ? err.message : String(err),
        },
        "request failed",
      );
    }
    return new Response(JSON.stringify(problem.document(c.req.path)), {
      status: problem.status,
      headers: { "Content-Type": PROBLEM_JSON, ...problem.headers },
    });
  }
}

/** Why a namespace is not ready (NATS down, topology missing), or undefined when it is. */
async function notReady(ns: GatewayNamespace): Promise<string | undefined> {
  const name = ns.org ?? "the single-tenant namespace";
  const nc = ns.dispatcher.connection;
  if (nc.isClosed()) return `${name}: the NATS connection is closed`;
  try {
    await ns.dispatcher.status();
    return undefined;
  } catch (err) {
    return `${name}: ${err instanceof Error ? err.message : String(err)}`;
  }
}
