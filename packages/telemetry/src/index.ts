/**
 * @packageDocumentation
 * What station-coding's processes share to be observed: the Prometheus metric registry
 * ({@link StationMetrics}) and a small `/metrics` + `/healthz` server, and OTLP trace export
 * ({@link startTracing}) that loads the OpenTelemetry SDK only when the environment asks for it.
 */

export { StationMetrics, TASK_DURATION_BUCKETS } from "./metrics.js";
export { parseListen, startMetricsServer } from "./metrics-server.js";
export { otlpTracesEndpoint, startTracing } from "./tracing.js";

export type { StationMetricsOptions, TaskCounts } from "./metrics.js";
export type { HealthReport, MetricsServer, MetricsServerOptions } from "./metrics-server.js";
export type { OtlpProtocol, StartTracingOptions, Tracing, TracingRole } from "./tracing.js";
