import { Counter, Gauge, Histogram, Registry } from "prom-client";
import type { Logger } from "pino";
import type { GatewayNamespace } from "./namespaces.js";

/**
 * The gateway's Prometheus metrics: its own requests and SSE clients, and on each scrape the
 * served namespaces' queue depth, workers, busy slots, dead letters and tasks by status (from the
 * task index). Labels carry token names and orgs, never tokens.
 */
export class GatewayMetrics {
  readonly registry: Registry;
  readonly requests: Counter<"method" | "route" | "status" | "token">;
  readonly duration: Histogram<"method" | "route">;
  readonly sseClients: Gauge<"org">;

  constructor(namespaces: readonly GatewayNamespace[], logger: Logger, registry = new Registry()) {
    this.registry = registry;
    const org = (ns: GatewayNamespace) => ns.org ?? "";
    this.requests = new Counter({
      name: "station_gateway_requests_total",
      help: "HTTP requests answered by the gateway, by route, status and token name",
      labelNames: ["method", "route", "status", "token"],
      registers: [registry],
    });
    this.duration = new Histogram({
      name: "station_gateway_request_duration_seconds",
      help: "Time to answer an HTTP request (to the first byte for SSE)",
      labelNames: ["method", "route"],
      buckets: [0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30],
      registers: [registry],
    });
    this.sseClients = new Gauge({
      name: "station_gateway_sse_clients",
      help: "Open Server-Sent Events streams, by org",
      labelNames: ["org"],
      registers: [registry],
    });
    /** One status read per namespace per scrape, shared by the gauges below. */
    let scrape:
      | Promise<
          Map<GatewayNamespace, Awaited<ReturnType<GatewayNamespace["dispatcher"]["status"]>> | undefined>
        >
      | undefined;
    const statuses = () => {
      scrape ??= (async () => {
        const out = new Map<
          GatewayNamespace,
          Awaited<ReturnType<GatewayNamespace["dispatcher"]["status"]>> | undefined
        >();
        await Promise.all(
          namespaces.map(async (ns) => {
            try {
              out.set(ns, await ns.dispatcher.status());
            } catch (err) {
              logger.warn(
                { org: ns.org, err: (err as Error).message },
                "metrics: reading the namespace status failed",
              );
              out.set(ns, undefined);
            }
          }),
        );
        setImmediate(() => (scrape = undefined));
        return out;
      })();
      return scrape;
    };
    new Gauge({
      name: "station_queue_depth",
      help: "Tasks waiting for a worker (the shared consumer's pending count), by org",
      labelNames: ["org"],
      registers: [registry],
      async collect() {
        this.reset();
        for (const [ns, status] of await statuses()) {
          if (status) this.set({ org: org(ns) }, status.tasks.consumer?.pending ?? status.tasks.messages);
        }
      },
    });
    new Gauge({
      name: "station_workers",
      help: "Workers with a presence record, by org and liveness",
      labelNames: ["org", "liveness"],
      registers: [registry],
      async collect() {
        this.reset();
        for (const [ns, status] of await statuses()) {
          if (!status) continue;
          for (const liveness of ["alive", "dead"] as const) {
            this.set(
              { org: org(ns), liveness },
              status.workers.filter((w) => w.liveness === liveness).length,
            );
          }
        }
      },
    });
    new Gauge({
      name: "station_worker_slots",
      help: "Task slots of live workers, by org and state (busy or total)",
      labelNames: ["org", "state"],
      registers: [registry],
      async collect() {
        this.reset();
        for (const [ns, status] of await statuses()) {
          if (!status) continue;
          const alive = status.workers.filter((w) => w.liveness === "alive");
          this.set(
            { org: org(ns), state: "busy" },
            alive.reduce((n, w) => n + w.inFlight, 0),
          );
          this.set(
            { org: org(ns), state: "total" },
            alive.reduce((n, w) => n + w.concurrency, 0),
          );
        }
      },
    });
    new Gauge({
      name: "station_dead_letters",
      help: "Messages in the dead-letter stream, by org",
      labelNames: ["org"],
      registers: [registry],
      async collect() {
        this.reset();
        for (const [ns, status] of await statuses()) {
          if (status) this.set({ org: org(ns) }, status.deadLetters);
        }
      },
    });
    new Gauge({
      name: "station_tasks",
      help: "Tasks in the task index, by org and status",
      labelNames: ["org", "status"],
      registers: [registry],
      collect() {
        this.reset();
        for (const ns of namespaces) {
          const counts = ns.index?.countByStatus?.();
          if (!counts) continue;
          for (const [status, n] of Object.entries(counts)) this.set({ org: org(ns), status }, n);
        }
      },
    });
  }
}
