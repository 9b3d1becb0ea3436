/**
 * @packageDocumentation
 * What station-coding's processes share to be observed. This entry: OTLP trace export
 * ({@link startTracing}), which loads the OpenTelemetry SDK only when the environment asks for it,
 * and `HOST:PORT` parsing. The Prometheus side (prom-client) is the `./metrics` entry, loaded only
 * by a process that serves metrics.
 */

export { parseListen } from "./listen.js";
export { otlpTracesEndpoint, startTracing } from "./tracing.js";

export type { OtlpProtocol, StartTracingOptions, Tracing, TracingRole } from "./tracing.js";
