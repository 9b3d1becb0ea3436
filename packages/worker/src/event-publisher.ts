import type { JetStreamClient } from "@nats-io/jetstream";
import { headers } from "@nats-io/transport-node";
import type { EventDraft, StreamEvent } from "@station-coding/protocol";
import type { Logger } from "pino";
import type { SecretRedactor } from "./redact.js";

/** Options of an {@link EventPublisher}. */
export interface EventPublisherOptions {
  js: JetStreamClient;
  subject: string;
  taskID: string;
  /** Seq of the first event (continues the task's earlier attempts). */
  firstSeq: number;
  /** Text/thinking deltas within this window are merged into one event. */
  coalesceMs: number;
  redactor: SecretRedactor;
  logger: Logger;
  /** Stamped on every event. */
  workerID: string;
  attempt: number;
  /** Publishes kept in flight at once before events queue locally. @default 256 */
  maxInFlight?: number;
}

type Coalescible = Extract<EventDraft, { type: "text" | "thinking" }>;

/**
 * Publishes a task's events in order with `seq` and `Nats-Msg-Id: <taskID>:<seq>`, without ever
 * blocking the task: `emit` only queues. Chatty text is coalesced; failed publishes are retried
 * with the same message id (deduplicated by the stream), so a flapping connection loses nothing.
 */
export class EventPublisher {
  private nextSeq: number;
  private published = 0;
  private readonly queue: { seq: number; data: string }[] = [];
  private inFlight = 0;
  private pending: Coalescible | undefined;
  private pendingTimer: NodeJS.Timeout | undefined;
  private idle: (() => void)[] = [];
  private closed = false;
  private readonly maxInFlight: number;

  constructor(private readonly o: EventPublisherOptions) {
    this.nextSeq = o.firstSeq;
    this.maxInFlight = o.maxInFlight ?? 256;
  }

  /** Events emitted so far (after coalescing). */
  get count(): number {
    return this.nextSeq - this.o.firstSeq;
  }

  /** Events the stream has acknowledged. */
  get acknowledged(): number {
    return this.published;
  }

  /** Queues an event; returns at once. */
  emit(draft: EventDraft): void {
    if (this.closed) return;
    if ((draft.type === "text" || draft.type === "thinking") && this.o.coalesceMs > 0) {
      if (this.pending && this.pending.type === draft.type) {
        this.pending = { ...this.pending, content: (this.pending.content ?? "") + (draft.content ?? "") };
        return;
      }
      this.flushPending();
      this.pending = draft;
      this.pendingTimer = setTimeout(() => this.flushPending(), this.o.coalesceMs);
      return;
    }
    this.flushPending();
    this.enqueue(draft);
  }

  /** Publishes what is buffered and resolves when every event so far is stored. */
  async flush(): Promise<void> {
    this.flushPending();
    if (this.queue.length === 0 && this.inFlight === 0) return;
    await new Promise<void>((resolve) => this.idle.push(resolve));
  }

  /** Stops accepting events (pending ones are still delivered by `flush`). */
  close(): void {
    this.flushPending();
    this.closed = true;
  }

  private flushPending(): void {
    if (this.pendingTimer) clearTimeout(this.pendingTimer);
    this.pendingTimer = undefined;
    const pending = this.pending;
    this.pending = undefined;
    if (pending && (pending.content ?? "") !== "") this.enqueue(pending);
  }

  private enqueue(draft: EventDraft): void {
    const seq = this.nextSeq++;
    const event = {
      ...this.o.redactor.redactValue(draft),
      taskID: this.o.taskID,
      seq,
      timestamp: new Date().toISOString(),
      workerID: this.o.workerID,
      attempt: this.o.attempt,
    } as StreamEvent;
    this.queue.push({ seq, data: JSON.stringify(event) });
    this.pump();
  }

  private pump(): void {
    while (this.inFlight < this.maxInFlight && this.queue.length > 0) {
      const item = this.queue.shift();
      if (!item) break;
      this.inFlight += 1;
      void this.publish(item.seq, item.data).finally(() => {
        this.inFlight -= 1;
        this.published += 1;
        this.pump();
        if (this.inFlight === 0 && this.queue.length === 0) {
          const waiters = this.idle;
          this.idle = [];
          for (const resolve of waiters) resolve();
        }
      });
    }
  }

  private async publish(seq: number, data: string): Promise<void> {
    const h = headers();
    h.set("Nats-Msg-Id", `${this.o.taskID}:${seq}`);
    for (let attempt = 1; ; attempt += 1) {
      try {
        await this.o.js.publish(this.o.subject, data, { headers: h, timeout: 2_000 });
        return;
      } catch (err) {
        // The bus is down or slow: keep the event and try again; the message id makes it safe.
        if (attempt === 1 || attempt % 20 === 0) {
          this.o.logger.warn({ err, seq, attempt }, "event publish failed, retrying");
        }
        await new Promise((resolve) => setTimeout(resolve, Math.min(2_000, 50 * attempt)));
      }
    }
  }
}
