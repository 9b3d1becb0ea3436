import type { MsgHdrs, Subscription } from "@nats-io/transport-node";
import type { Span, TextMapSetter } from "@opentelemetry/api";
import { SpanKind, SpanStatusCode, context, propagation, trace } from "@opentelemetry/api";
import type { ResolvedTask, TaskResult } from "@station-coding/protocol";
import { StreamEvent, safeJson } from "@station-coding/protocol";
import type { ResultWatch } from "./result-watch.js";
import type { DispatcherRuntime } from "./runtime.js";

/** Name of the dispatcher's tracer. */
export const TRACER_NAME = "station-coding-dispatcher";

/** Version reported with the tracer. */
export const DISPATCHER_VERSION = "0.1.0";

/** Name of the span that covers a task from submit to result. */
export const DISPATCH_SPAN = "station.dispatch";

const headerSetter: TextMapSetter<MsgHdrs> = {
  set(carrier, key, value) {
    carrier.set(key, value);
  },
};

/**
 * The `station.dispatch` span of a submitted task: started at submit (child of the caller's active
 * span), carried to the worker as a W3C `traceparent` header, given one span event per task event
 * received, and ended when the result arrives.
 */
export class DispatchSpan {
  private sub: Subscription | undefined;
  private ended = false;

  private constructor(
    private readonly rt: DispatcherRuntime,
    readonly taskID: string,
    readonly span: Span,
  ) {}

  /** Starts the span and writes its trace context into `headers`. */
  static start(rt: DispatcherRuntime, task: ResolvedTask, headers: MsgHdrs): DispatchSpan {
    const span = rt.tracer.startSpan(DISPATCH_SPAN, {
      kind: SpanKind.PRODUCER,
      attributes: {
        "station.task_id": task.taskID,
        "station.op": task.op,
        "station.session": task.session.name,
        "messaging.system": "nats",
        "messaging.destination.name": rt.names.taskSubject,
        ...(rt.names.org !== undefined ? { "station.org": rt.names.org } : {}),
      },
    });
    propagation.inject(trace.setSpan(context.active(), span), headers, headerSetter);
    return new DispatchSpan(rt, task.taskID, span);
  }

  /**
   * Records the task's events on the span until `watch` settles, then ends the span. A span that
   * records nothing (no OpenTelemetry SDK installed, or sampled out) ends at once: following the
   * task would cost two subscriptions and a result lookup per submitted task for nothing.
   */
  follow(watch: ResultWatch): void {
    if (!this.span.isRecording()) {
      this.end();
      return;
    }
    const subject = this.rt.names.streamSubject(this.taskID);
    try {
      this.sub = this.rt.nc.subscribe(subject, {
        callback: (err, msg) => {
          if (err) return;
          const parsed = StreamEvent.safeParse(safeJson(msg.data));
          if (!parsed.success || this.ended) return;
          const event = parsed.data;
          // Text and thinking deltas are many and say nothing about the run's shape (the worker skips them too).
          if (event.type === "text" || event.type === "thinking") return;
          this.span.addEvent(event.type, { "station.seq": event.seq });
        },
      });
    } catch (err) {
      this.rt.logger.warn({ taskID: this.taskID, err }, "cannot record task events on the dispatch span");
    }
    const release = watch.acquire();
    void watch.promise
      .then(
        (result) => this.end(result),
        (err: unknown) => this.end(undefined, err),
      )
      .finally(release);
  }

  /** Marks the publish as a duplicate the stream dropped. */
  duplicate(): void {
    this.span.setAttribute("station.duplicate", true);
  }

  /** Ends the span with the task's outcome, or with the reason the wait ended without one. */
  end(result?: TaskResult, err?: unknown): void {
    if (this.ended) return;
    this.ended = true;
    try {
      this.sub?.unsubscribe();
    } catch {
      // connection already closed
    }
    if (result) {
      this.span.setAttribute("station.status", result.status);
      if (result.workerID !== undefined) this.span.setAttribute("station.worker_id", result.workerID);
      this.span.setAttribute("station.stream_events", result.metrics.streamEvents);
      this.span.setStatus(
        result.status === "completed"
          ? { code: SpanStatusCode.OK }
          : { code: SpanStatusCode.ERROR, message: result.error ?? result.status },
      );
    } else if (err !== undefined) {
      this.span.setAttribute("station.detached", true);
      const message = err instanceof Error ? err.message : JSON.stringify(err);
      this.span.setStatus({ code: SpanStatusCode.ERROR, message });
    }
    this.span.end();
  }
}
