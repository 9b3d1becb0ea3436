// The OpenTelemetry SDK is loaded here only when the environment asks for trace export: a process
// without OTEL_EXPORTER_OTLP_ENDPOINT never imports it (see startTracing).
import { context, propagation, trace } from "@opentelemetry/api";
import type * as SdkTrace from "@opentelemetry/sdk-trace";

/** The process that exports: its service name is `station-coding-<role>` unless OTEL_SERVICE_NAME says otherwise. */
export type TracingRole = "worker" | "cli" | "gateway";

/** Trace export as started by {@link startTracing}. */
export interface Tracing {
  /** The `service.name` the spans carry. */
  readonly serviceName: string;
  /** Where spans go. */
  readonly endpoint: string;
  /** `http/protobuf` or `http/json`. */
  readonly protocol: OtlpProtocol;
  /** Exports every span ended so far. */
  forceFlush(): Promise<void>;
  /** Exports what is left and stops; call before the process exits. Idempotent. */
  shutdown(): Promise<void>;
}

/** The OTLP transports this build exports with. */
export type OtlpProtocol = "http/protobuf" | "http/json";

/** Options of {@link startTracing}. */
export interface StartTracingOptions {
  /** The environment to read `OTEL_*` from. @default process.env */
  env?: NodeJS.ProcessEnv;
  /** Told why tracing stays off although an endpoint is set (e.g. an unsupported protocol). */
  onWarning?: (message: string) => void;
}

const truthy = (value: string | undefined) => value !== undefined && /^(true|1|yes)$/i.test(value.trim());

/** The traces endpoint the environment names, or undefined when it names none (export off). */
export function otlpTracesEndpoint(env: NodeJS.ProcessEnv = process.env): string | undefined {
  if (truthy(env.OTEL_SDK_DISABLED)) return undefined;
  const exporters = (env.OTEL_TRACES_EXPORTER ?? "otlp").split(",").map((e) => e.trim());
  if (!exporters.includes("otlp")) return undefined;
  const traces = env.OTEL_EXPORTER_OTLP_TRACES_ENDPOINT?.trim();
  if (traces) return traces;
  const base = env.OTEL_EXPORTER_OTLP_ENDPOINT?.trim();
  if (!base) return undefined;
  return `${base.replace(/\/+$/, "")}/v1/traces`;
}

function samplerFrom(env: NodeJS.ProcessEnv, sdk: typeof SdkTrace): SdkTrace.Sampler {
  const name = (env.OTEL_TRACES_SAMPLER ?? "parentbased_always_on").trim().toLowerCase();
  const arg = Number.parseFloat(env.OTEL_TRACES_SAMPLER_ARG ?? "1");
  const ratio = Number.isFinite(arg) && arg >= 0 && arg <= 1 ? arg : 1;
  switch (name) {
    case "always_on":
      return new sdk.AlwaysOnSampler();
    case "always_off":
      return new sdk.AlwaysOffSampler();
    case "traceidratio":
      return new sdk.TraceIdRatioBasedSampler(ratio);
    case "parentbased_always_off":
      return new sdk.ParentBasedSampler({ root: new sdk.AlwaysOffSampler() });
    case "parentbased_traceidratio":
      return new sdk.ParentBasedSampler({ root: new sdk.TraceIdRatioBasedSampler(ratio) });
    default:
      return new sdk.ParentBasedSampler({ root: new sdk.AlwaysOnSampler() });
  }
}

/**
 * Starts exporting this process's spans over OTLP/HTTP when the standard environment asks for it
 * (`OTEL_EXPORTER_OTLP_ENDPOINT` or `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`; headers, timeout and
 * certificates from the other `OTEL_EXPORTER_OTLP_*` variables; `OTEL_EXPORTER_OTLP_PROTOCOL`
 * `http/protobuf` (default) or `http/json`; `OTEL_SERVICE_NAME`, `OTEL_RESOURCE_ATTRIBUTES`,
 * `OTEL_TRACES_SAMPLER[_ARG]`, `OTEL_SDK_DISABLED`, `OTEL_TRACES_EXPORTER=none`). Installs the
 * global tracer provider, W3C trace-context and baggage propagation and an AsyncLocalStorage
 * context manager, so the spans the libraries record through `@opentelemetry/api` leave the process.
 *
 * Resolves to undefined, having loaded nothing, when no endpoint is set. Once per process: a
 * second call resolves to the first's export (whatever its role) until it is shut down.
 */
export function startTracing(
  role: TracingRole,
  options: StartTracingOptions = {},
): Promise<Tracing | undefined> {
  // One SDK per process: a second call (the CLI's hook, then `serve` itself) gets the first's.
  started ??= install(role, options).then(
    (tracing) => {
      if (!tracing) started = undefined;
      return tracing;
    },
    (err: unknown) => {
      started = undefined;
      throw err;
    },
  );
  return started;
}

let started: Promise<Tracing | undefined> | undefined;

async function install(role: TracingRole, options: StartTracingOptions): Promise<Tracing | undefined> {
  const env = options.env ?? process.env;
  const endpoint = otlpTracesEndpoint(env);
  if (endpoint === undefined) return undefined;
  const wanted = (
    env.OTEL_EXPORTER_OTLP_TRACES_PROTOCOL ??
    env.OTEL_EXPORTER_OTLP_PROTOCOL ??
    "http/protobuf"
  )
    .trim()
    .toLowerCase();
  if (wanted !== "http/protobuf" && wanted !== "http/json") {
    options.onWarning?.(
      `OTEL_EXPORTER_OTLP_PROTOCOL ${JSON.stringify(wanted)}: not supported by station-coding; use http/protobuf or http/json (traces stay off)`,
    );
    return undefined;
  }
  const protocol: OtlpProtocol = wanted;
  const [sdk, core, resources, hooks, exporterModule] = await Promise.all([
    import("@opentelemetry/sdk-trace"),
    import("@opentelemetry/core"),
    import("@opentelemetry/resources"),
    import("@opentelemetry/context-async-hooks"),
    protocol === "http/json"
      ? import("@opentelemetry/exporter-trace-otlp-http")
      : import("@opentelemetry/exporter-trace-otlp-proto"),
  ]);
  // The exporter reads the endpoint, headers and timeout from the environment itself; the URL is
  // given so that a test's or caller's `env` (not only process.env) is what counts.
  const exporter = new exporterModule.OTLPTraceExporter({ url: endpoint });
  const serviceName = env.OTEL_SERVICE_NAME?.trim() || `station-coding-${role}`;
  const resource = resources
    .resourceFromAttributes({ "service.name": serviceName })
    .merge(resources.detectResources({ detectors: [resources.envDetector] }))
    .merge(resources.resourceFromAttributes({ "service.name": serviceName }));
  const provider = new sdk.TracerProvider({
    resource,
    sampler: samplerFrom(env, sdk),
    spanProcessors: [new sdk.BatchSpanProcessor({ exporter, scheduledDelayMillis: 1000 })],
  });
  context.setGlobalContextManager(new hooks.AsyncLocalStorageContextManager().enable());
  propagation.setGlobalPropagator(
    new core.CompositePropagator({
      propagators: [new core.W3CTraceContextPropagator(), new core.W3CBaggagePropagator()],
    }),
  );
  trace.setGlobalTracerProvider(provider);
  let stopping: Promise<void> | undefined;
  return {
    serviceName,
    endpoint,
    protocol,
    forceFlush: () => provider.forceFlush(),
    shutdown() {
      stopping ??= provider.shutdown().finally(() => {
        trace.disable();
        propagation.disable();
        context.disable();
        started = undefined;
      });
      return stopping;
    },
  };
}
