import { createServer } from "node:http";
import type { Server } from "node:http";
import type { AddressInfo } from "node:net";
import { parseListen } from "./listen.js";
import type { StationMetrics } from "./metrics.js";

/** What `/healthz` reports: healthy (200) or not (503), with a short reason. */
export interface HealthReport {
  healthy: boolean;
  /** Shown in the body, e.g. `"nats: connected"`. */
  detail: string;
}

/** Options of {@link startMetricsServer}. */
export interface MetricsServerOptions {
  /** `HOST:PORT` to listen on (`[::1]:9464`, port 0 for any free port). */
  listen: string;
  metrics: StationMetrics;
  /** Asked on each `/healthz`. */
  health: () => HealthReport;
  /** Told about a failed scrape (the request gets a 500). */
  onError?: (err: unknown) => void;
}

/** A running metrics server. */
export interface MetricsServer {
  /** Where it listens (the port chosen when 0 was asked). */
  readonly host: string;
  readonly port: number;
  /** `http://host:port`. */
  readonly url: string;
  close(): Promise<void>;
}

/**
 * Serves `GET /metrics` (Prometheus text format) and `GET /healthz` (200 when healthy, else 503)
 * on plain HTTP; anything else is a 404. For a process without its own HTTP server (the worker).
 */
export async function startMetricsServer(options: MetricsServerOptions): Promise<MetricsServer> {
  const { host, port } = parseListen(options.listen);
  const server: Server = createServer((req, res) => {
    const path = (req.url ?? "/").split("?")[0];
    if (req.method !== "GET" && req.method !== "HEAD") {
      res.writeHead(405, { Allow: "GET, HEAD", "Content-Type": "text/plain" }).end("method not allowed\n");
      return;
    }
    if (path === "/metrics") {
      options.metrics.text().then(
        (text) => res.writeHead(200, { "Content-Type": options.metrics.contentType }).end(text),
        (err: unknown) => {
          options.onError?.(err);
          res.writeHead(500, { "Content-Type": "text/plain" }).end("metrics collection failed\n");
        },
      );
      return;
    }
    if (path === "/healthz") {
      const report = options.health();
      res
        .writeHead(report.healthy ? 200 : 503, { "Content-Type": "text/plain", "Cache-Control": "no-store" })
        .end(`${report.healthy ? "ok" : "unhealthy"}: ${report.detail}\n`);
      return;
    }
    res.writeHead(404, { "Content-Type": "text/plain" }).end("not found: try /metrics or /healthz\n");
  });
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(port, host, () => {
      server.off("error", reject);
      resolve();
    });
  });
  const address = server.address() as AddressInfo;
  const shownHost = address.family === "IPv6" ? `[${address.address}]` : address.address;
  return {
    host: address.address,
    port: address.port,
    url: `http://${shownHost}:${address.port}`,
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}
