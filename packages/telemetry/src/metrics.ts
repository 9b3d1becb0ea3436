import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from "prom-client";
import type { TaskIndexStatus, TaskResult } from "@station-coding/protocol";

/** What {@link StationMetrics.trackTaskIndex} reads: a `TaskIndexView` of `@station-coding/protocol`. */
export interface TaskCounts {
  countByStatus(): Record<TaskIndexStatus, number>;
}

/** Options of {@link StationMetrics}. */
export interface StationMetricsOptions {
  /** Also collect the process's own metrics (CPU, memory, event loop lag, …). @default true */
  processMetrics?: boolean;
  /** Labels put on every metric of this registry, e.g. `{ worker: "w1" }`. @default {} */
  labels?: Record<string, string>;
}

/** Bounds of the task duration histogram, in seconds: a tool call's worth up to a long agent run. */
export const TASK_DURATION_BUCKETS = [0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1800, 3600];

/**
 * The Prometheus metrics station-coding processes share (the worker's `/metrics`, the gateway's):
 * one prom-client registry with the task metrics every role reports the same way. A process adds
 * its own metrics to {@link StationMetrics.registry} (the worker its slots, the gateway its requests).
 *
 * Names: `station_coding_tasks_total{org,status}`, `station_coding_task_duration_seconds{org,status}`,
 * `station_coding_tokens_total{org,model,kind}` (kind: input, output, reasoning, cache_read,
 * cache_write), `station_coding_cost_total{org,model}`. `org` is empty in single-tenant mode,
 * `model` is `provider/model` (empty when the task made no model call).
 */
export class StationMetrics {
  /** The registry to serve (`registry.metrics()`) and to register more metrics on. */
  readonly registry = new Registry();
  /** Tasks finished, by org and final status. */
  readonly tasks: Counter<"org" | "status">;
  /** Run time of finished tasks (the result's `metrics.duration`), by org and final status. */
  readonly taskDuration: Histogram<"org" | "status">;
  /** Model tokens, by org, model and kind. */
  readonly tokens: Counter<"org" | "model" | "kind">;
  /** Model cost in the provider's currency (USD for most), by org and model. */
  readonly cost: Counter<"org" | "model">;

  constructor(options: StationMetricsOptions = {}) {
    this.registry.setDefaultLabels(options.labels ?? {});
    if (options.processMetrics ?? true) collectDefaultMetrics({ register: this.registry });
    const registers = [this.registry];
    this.tasks = new Counter({
      name: "station_coding_tasks_total",
      help: "Tasks finished, by org and final status",
      labelNames: ["org", "status"],
      registers,
    });
    this.taskDuration = new Histogram({
      name: "station_coding_task_duration_seconds",
      help: "Run time of finished tasks, by org and final status",
      labelNames: ["org", "status"],
      buckets: TASK_DURATION_BUCKETS,
      registers,
    });
    this.tokens = new Counter({
      name: "station_coding_tokens_total",
      help: "Model tokens of finished tasks, by org, model and kind",
      labelNames: ["org", "model", "kind"],
      registers,
    });
    this.cost = new Counter({
      name: "station_coding_cost_total",
      help: "Model cost of finished tasks in the provider's currency, by org and model",
      labelNames: ["org", "model"],
      registers,
    });
  }

  /** Counts a task's result: its status, duration, tokens and cost. */
  recordResult(result: TaskResult): void {
    const org = result.org ?? "";
    const m = result.metrics;
    this.tasks.inc({ org, status: result.status });
    this.taskDuration.observe({ org, status: result.status }, m.duration / 1000);
    const model = m.model === undefined ? "" : m.provider ? `${m.provider}/${m.model}` : m.model;
    if (m.tokens) {
      const kinds = {
        input: m.tokens.input,
        output: m.tokens.output,
        reasoning: m.tokens.reasoning,
        cache_read: m.tokens.cacheRead,
        cache_write: m.tokens.cacheWrite,
      };
      for (const [kind, count] of Object.entries(kinds)) {
        if (count > 0) this.tokens.inc({ org, model, kind }, count);
      }
    }
    if (m.cost !== undefined && m.cost > 0) this.cost.inc({ org, model }, m.cost);
  }

  /**
   * Reports `station_coding_index_tasks{org,status}`: the tasks of an org's task index by status
   * (queued and running included), read from `view` at each scrape. Call once per org; a second
   * call for the same org replaces the first's view.
   */
  trackTaskIndex(org: string | undefined, view: TaskCounts): void {
    this.indexViews.set(org ?? "", view);
    if (this.indexGauge) return;
    const views = this.indexViews;
    this.indexGauge = new Gauge({
      name: "station_coding_index_tasks",
      help: "Tasks in the task index, by org and status",
      labelNames: ["org", "status"],
      registers: [this.registry],
      collect() {
        this.reset();
        for (const [org, v] of views) {
          for (const [status, count] of Object.entries(v.countByStatus())) this.set({ org, status }, count);
        }
      },
    });
  }

  /** Reports `station_coding_worker_slots{state}`: `total` and `busy` (tasks running), read at each scrape. */
  trackWorkerSlots(total: number, busy: () => number): void {
    new Gauge({
      name: "station_coding_worker_slots",
      help: "Task slots of this worker: total, and busy (running a task)",
      labelNames: ["state"],
      registers: [this.registry],
      collect() {
        this.set({ state: "total" }, total);
        this.set({ state: "busy" }, busy());
      },
    });
  }

  private readonly indexViews = new Map<string, TaskCounts>();
  private indexGauge: Gauge<"org" | "status"> | undefined;

  /** The registry's metrics in the Prometheus text format. */
  text(): Promise<string> {
    return this.registry.metrics();
  }

  /** The Content-Type of {@link text}. */
  get contentType(): string {
    return this.registry.contentType;
  }
}
