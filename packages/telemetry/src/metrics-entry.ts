/**
 * @packageDocumentation
 * `@station-coding/telemetry/metrics`: the Prometheus metric registry station-coding's processes
 * share ({@link StationMetrics}) and a small `/metrics` + `/healthz` server. A separate entry so
 * that a process that serves no metrics never loads prom-client.
 */

export { StationMetrics, TASK_DURATION_BUCKETS } from "./metrics.js";
export { startMetricsServer } from "./metrics-server.js";

export type { StationMetricsOptions, TaskCounts } from "./metrics.js";
export type { HealthReport, MetricsServer, MetricsServerOptions } from "./metrics-server.js";
