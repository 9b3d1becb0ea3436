import { DeliverPolicy } from "@nats-io/jetstream";
import type { Consumer, ConsumerMessages } from "@nats-io/jetstream";
import type { StreamEvent, TaskResult } from "@station-coding/protocol";
import {
  ErrorCodes,
  StreamEvent as StreamEventSchema,
  ValidationError,
  parseDuration,
  safeJson,
} from "@station-coding/protocol";
import { Channel } from "./channel.js";
import { guarded, toStationError } from "./errors.js";
import type { ResultWatch } from "./result-watch.js";
import { closedError } from "./result-watch.js";
import type { DispatcherRuntime } from "./runtime.js";

/** Options of `TaskHandle.events()`. */
export interface EventsOptions {
  /** Yield only events with a larger `seq`: resumes where an earlier reader stopped. @default 0 */
  afterSeq?: number;
  /**
   * Once the result is in, how long to wait for missing events (none arriving) before ending.
   * @default the dispatcher's `eventsSettle` ("2s")
   */
  settle?: number | string;
  /** Ends the iteration early (no error). */
  signal?: AbortSignal;
}

type Item =
  | { kind: "event"; event: StreamEvent }
  | { kind: "result"; result: TaskResult }
  | { kind: "settled" }
  | { kind: "stop" };

/**
 * Replays a task's events from the events stream and follows them live, in `seq` order without
 * duplicates, through an ordered consumer (it recreates itself after a reconnect or a gap). Ends
 * once the result is in and every event up to the last stored one was yielded, or after `settle`
 * without progress.
 */
export async function* followEvents(
  rt: DispatcherRuntime,
  taskID: string,
  watch: ResultWatch,
  options: EventsOptions = {},
): AsyncGenerator<StreamEvent, void, undefined> {
  const afterSeq = options.afterSeq ?? 0;
  if (!Number.isInteger(afterSeq) || afterSeq < 0) {
    throw new ValidationError(
      "afterSeq",
      "integer",
      `afterSeq ${afterSeq}: must be a non-negative integer`,
      ErrorCodes.InvalidConfig,
    );
  }
  const settleMs =
    options.settle === undefined ? rt.options.eventsSettle : parseDuration("settle", options.settle);
  const subject = rt.names.streamSubject(taskID);
  const stream = rt.names.streams.events;
  const what = `following the events of task ${taskID}`;
  const log = rt.logger.child({ taskID });
  const channel = new Channel<Item>();
  const cleanups: (() => void)[] = [];
  let consumer: Consumer | undefined;
  let messages: ConsumerMessages | undefined;
  let settleTimer: NodeJS.Timeout | undefined;
  const armSettle = (): void => {
    clearTimeout(settleTimer);
    settleTimer = setTimeout(() => channel.push({ kind: "settled" }), settleMs);
  };

  try {
    if (rt.closed.aborted) throw closedError(taskID);
    if (options.signal?.aborted) return;
    const onClose = (): void => channel.fail(closedError(taskID));
    const onAbort = (): void => channel.push({ kind: "stop" });
    rt.closed.addEventListener("abort", onClose, { once: true });
    options.signal?.addEventListener("abort", onAbort, { once: true });
    cleanups.push(() => {
      rt.closed.removeEventListener("abort", onClose);
      options.signal?.removeEventListener("abort", onAbort);
    });
    cleanups.push(
      rt.monitor.onPermissionError((pe) => {
        const mine =
          pe.subject === subject ||
          (pe.subject.startsWith(`$JS.API.CONSUMER.`) && pe.subject.includes(`.${stream}.`));
        if (mine) channel.fail(toStationError(what, pe));
      }),
    );
    consumer = await guarded(what, () =>
      rt.js.consumers.get(stream, { filter_subjects: subject, deliver_policy: DeliverPolicy.All }),
    );
    messages = await guarded(what, () =>
      consumer!.consume({
        max_messages: 256,
        callback: (msg) => {
          const parsed = StreamEventSchema.safeParse(safeJson(msg.data));
          if (!parsed.success) {
            log.warn(
              { streamSeq: msg.seq, error: parsed.error.message },
              "ignoring an invalid event message",
            );
            return;
          }
          channel.push({ kind: "event", event: parsed.data });
        },
      }),
    );
    void messages.closed().then((err) => {
      if (err) channel.fail(toStationError(what, err));
    });
    cleanups.push(watch.acquire());
    watch.promise.then(
      (result) => channel.push({ kind: "result", result }),
      (err: unknown) => channel.fail(err),
    );

    let last = afterSeq;
    let final: number | undefined;
    const buffer = new Map<number, StreamEvent>();
    const drain = function* (all: boolean): Generator<StreamEvent> {
      for (;;) {
        let next = buffer.get(last + 1);
        if (!next && all && buffer.size > 0) {
          const seq = Math.min(...buffer.keys());
          log.warn({ from: last + 1, to: seq - 1 }, "events missing from the stream; skipping them");
          next = buffer.get(seq);
        }
        if (!next) return;
        buffer.delete(next.seq);
        last = next.seq;
        yield next;
      }
    };

    for await (const item of channel) {
      switch (item.kind) {
        case "event": {
          const { event } = item;
          if (event.seq <= last || buffer.has(event.seq)) break;
          buffer.set(event.seq, event);
          const before = last;
          yield* drain(false);
          // Progress after the result restarts the settle time.
          if (final !== undefined && last > before) armSettle();
          break;
        }
        case "result": {
          const stored = await lastStoredSeq(rt, subject).catch(() => 0);
          final = Math.max(item.result.metrics.streamEvents, stored);
          armSettle();
          break;
        }
        case "settled":
          if (final !== undefined && last < final) {
            log.warn({ last, expected: final }, "events did not all arrive after the result; ending");
          }
          yield* drain(true);
          return;
        case "stop":
          return;
      }
      if (final !== undefined && last >= final) {
        yield* drain(true);
        return;
      }
    }
  } catch (err) {
    // Whatever broke because the dispatcher closed (connection closed, consumer gone) says so.
    if (rt.closed.aborted) throw closedError(taskID);
    throw err;
  } finally {
    clearTimeout(settleTimer);
    for (const cleanup of cleanups) cleanup();
    messages?.stop();
    // Ordered consumers expire by themselves; deleting is tidiness, not worth blocking the reader.
    void consumer?.delete().catch(() => undefined);
  }
}

/**
 * The highest `seq` the stored events of a task are known to reach: the larger of the last stored
 * event's `seq` and the number of stored events (a retried publish can be stored out of order).
 */
async function lastStoredSeq(rt: DispatcherRuntime, subject: string): Promise<number> {
  const stream = rt.names.streams.events;
  const [last, info] = await Promise.all([
    rt.jsm.streams.getMessage(stream, { last_by_subj: subject }).catch(() => null),
    rt.jsm.streams.info(stream, { subjects_filter: subject }).catch(() => undefined),
  ]);
  const seq = last?.json<{ seq?: unknown }>().seq;
  const count = info?.state.subjects?.[subject] ?? 0;
  return Math.max(typeof seq === "number" && Number.isInteger(seq) ? seq : 0, count);
}
