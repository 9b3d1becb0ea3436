import { DeliverPolicy, jetstream } from "@nats-io/jetstream";
import type { CodingDispatcher } from "@station-coding/dispatcher";
import type { BenchEnv } from "./bench-env.js";

/** One stored event of a task: its type and the worker's timestamp (epoch ms, 1 ms resolution). */
export interface EventTime {
  type: string;
  at: number;
}

/**
 * The stored events of the given tasks, in order, read after the fact from the events stream (so
 * that reading them does not load the system while it is measured).
 */
export async function eventTimes(
  env: BenchEnv,
  dispatcher: CodingDispatcher,
  taskIDs: readonly string[],
): Promise<Map<string, EventTime[]>> {
  const wanted = new Set(taskIDs);
  const out = new Map<string, EventTime[]>();
  const nc = await env.connect("bench-event-times");
  const consumer = await jetstream(nc).consumers.get(dispatcher.names.streams.events, {
    filter_subjects: `${dispatcher.names.streamPrefix}.*`,
    deliver_policy: DeliverPolicy.All,
  });
  const messages = await consumer.fetch({ max_messages: 1_000_000, expires: 5_000 });
  for await (const msg of messages) {
    const event = msg.json<{ taskID: string; type: string; timestamp: string }>();
    if (wanted.has(event.taskID)) {
      const list = out.get(event.taskID) ?? [];
      list.push({ type: event.type, at: Date.parse(event.timestamp) });
      out.set(event.taskID, list);
    }
    if (msg.info.pending === 0) break;
  }
  return out;
}

/** The timestamp of the first event of `type`, if there is one. */
export function firstOf(events: readonly EventTime[] | undefined, type: string): number | undefined {
  return events?.find((e) => e.type === type)?.at;
}
