import { Counter, Gauge, Histogram, Registry } from "prom-client";
import type { Logger } from "pino";
import type { TaskIndexRecord } from "@station-coding/protocol";
import type { GatewayNamespace } from "./namespaces.js";

const FINAL = new Set(["completed", "error", "cancelled", "timeout"]);

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
    const taskDuration = new Histogram({
      name: "station_gateway_task_duration_seconds",
      help: "Run time of tasks that finished while this gateway watched the task index, by org and status",
      labelNames: ["org", "status"],
      buckets: [1, 5, 15, 30, 60, 120, 300, 600, 1200, 1800, 3600],
      registers: [registry],
    });
    const tokens = new Counter({
      name: "station_gateway_task_tokens_total",
      help: "Model tokens of tasks that finished while this gateway watched, by org, model and kind",
      labelNames: ["org", "model", "kind"],
      registers: [registry],
    });
    const cost = new Counter({
      name: "station_gateway_task_cost_total",
      help: "Model cost of tasks that finished while this gateway watched, by org and model",
      labelNames: ["org", "model"],
      registers: [registry],
    });
    for (const ns of namespaces) {
      ns.changes?.add((record: TaskIndexRecord, previous: TaskIndexRecord | undefined) => {
        // Once per task: when its record first turns final.
        if (!FINAL.has(record.status) || (previous !== undefined && FINAL.has(previous.status))) return;
        const m = record.metrics;
        if (!m) return;
        const labels = { org: org(ns), status: record.status };
        taskDuration.observe(labels, m.duration / 1000);
        const model = m.model === undefined ? "" : m.provider ? `${m.provider}/${m.model}` : m.model;
        if (m.inputTokens !== undefined) tokens.inc({ org: org(ns), model, kind: "input" }, m.inputTokens);
        if (m.outputTokens !== undefined) tokens.inc({ org: org(ns), model, kind: "output" }, m.outputTokens);
        if (m.cost !== undefined) cost.inc({ org: org(ns), model }, m.cost);
      });
    }
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
