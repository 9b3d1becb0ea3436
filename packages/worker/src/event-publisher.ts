import type { JetStreamClient, JetStreamManager } from "@nats-io/jetstream";
import { headers } from "@nats-io/transport-node";
import type { ArtifactRef, EventDraft, StreamEvent } from "@station-coding/protocol";
import type { Logger } from "pino";
import { fitJson } from "./fit-message.js";
import { PayloadTooLargeError, publishBounded } from "./publish.js";
import type { SecretRedactor } from "./shared/redact.js";

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
  /** Largest event to publish, in bytes: the server's max_payload less room for headers. */
  maxBytes: () => number;
  /** Stores the whole of an event too large to publish (as an artifact); the event refers to it. */
  offload?: (name: string, data: Uint8Array) => Promise<ArtifactRef>;
  /** Attempts of one publish while the server is unavailable, before the event is dropped. @default 30 */
  maxAttempts?: number;
}

interface Queued {
  seq: number;
  /** The message body; undefined while an oversized event is being stored and cut. */
  data: string | undefined;
}

type Coalescible = Extract<EventDraft, { type: "text" | "thinking" }>;

/**
 * Publishes a task's events in order with `seq` and `Nats-Msg-Id: <taskID>:<seq>`, without ever
 * blocking the task: `emit` only queues. Chatty text is coalesced; failed publishes are retried
 * with the same message id (deduplicated by the stream), so a flapping connection loses nothing.
 *
 * Bounded: an event larger than `maxBytes` is stored whole through `offload` and published with
 * its long strings cut (`truncated`, `fullEvent`); a publish is tried at most `maxAttempts` times
 * and never again when it cannot succeed (too large, permission denied). An event given up is
 * logged and counted in `dropped`, so that `flush` always returns.
 */
export class EventPublisher {
  private nextSeq: number;
  private published = 0;
  private droppedCount = 0;
  private readonly queue: Queued[] = [];
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

  /** Events given up: they could not be published within the attempts allowed. */
  get dropped(): number {
    return this.droppedCount;
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
    const data = JSON.stringify(event);
    const item: Queued = { seq, data: undefined };
    if (Buffer.byteLength(data) <= this.o.maxBytes()) item.data = data;
    else
      void this.shrink(event, data).then((small) => {
        item.data = small;
        this.pump();
      });
    this.queue.push(item);
    this.pump();
  }

  /** An oversized event: stored whole (when it can be), published cut to fit. Never rejects. */
  private async shrink(event: StreamEvent, data: string): Promise<string> {
    const maxBytes = this.o.maxBytes();
    let fullEvent: ArtifactRef | undefined;
    try {
      fullEvent = await this.o.offload?.(`event-${event.seq}.json`, Buffer.from(data));
    } catch (err) {
      this.o.logger.warn({ err, seq: event.seq }, "could not store an oversized event whole");
    }
    this.o.logger.warn(
      { seq: event.seq, type: event.type, bytes: Buffer.byteLength(data), maxBytes, stored: fullEvent?.key },
      "event larger than a message may be; publishing it cut",
    );
    const mark = (cut: StreamEvent): StreamEvent => ({
      ...cut,
      truncated: true,
      ...(fullEvent ? { fullEvent } : {}),
    });
    const stub = () => JSON.stringify(this.stub(event, Buffer.byteLength(data), fullEvent));
    try {
      return fitJson(event, maxBytes, mark) ?? stub();
    } catch {
      return stub();
    }
  }

  /** What is left of an event that cannot be cut to fit: its envelope and a note. */
  private stub(event: StreamEvent, bytes: number, fullEvent: ArtifactRef | undefined): StreamEvent {
    const where = fullEvent ? `stored whole as ${fullEvent.key}` : "not stored";
    return {
      taskID: event.taskID,
      seq: event.seq,
      timestamp: event.timestamp,
      type: event.type,
      ...(event.workerID !== undefined ? { workerID: event.workerID } : {}),
      ...(event.attempt !== undefined ? { attempt: event.attempt } : {}),
      content: `${event.type} event of ${bytes} bytes is larger than a message may be; ${where}`,
      truncated: true,
      ...(fullEvent ? { fullEvent } : {}),
    };
  }

  private pump(): void {
    while (this.inFlight < this.maxInFlight && this.queue.length > 0) {
      const item = this.queue[0];
      if (!item) break;
      // Order is kept: later events wait until an oversized one at the head is ready (it pumps then).
      if (item.data === undefined) return;
      this.queue.shift();
      this.inFlight += 1;
      void this.publish(item.seq, item.data).finally(() => {
        this.inFlight -= 1;
        this.pump();
        if (this.inFlight === 0 && this.queue.length === 0) {
          const waiters = this.idle;
          this.idle = [];
          for (const resolve of waiters) resolve();
        }
      });
    }
  }

  private async publish(seq: number, data: string, stubbed = false): Promise<void> {
    const h = headers();
    h.set("Nats-Msg-Id", `${this.o.taskID}:${seq}`);
    const log = this.o.logger;
    try {
      await publishBounded(this.o.js, this.o.subject, data, {
        headers: h,
        attempts: this.o.maxAttempts ?? 30,
        // The bus is down or slow: keep the event and try again; the message id makes it safe.
        onRetry: (err, attempt) => {
          if (attempt === 1 || attempt % 10 === 0)
            log.warn({ err, seq, attempt }, "event publish failed, retrying");
        },
      });
      this.published += 1;
    } catch (err) {
      if (err instanceof PayloadTooLargeError && !stubbed) {
        // The server's limit shrank under us (a reconnect to a server with a smaller one): publish a note instead.
        const event = JSON.parse(data) as StreamEvent;
        const stub = this.stub(event, Buffer.byteLength(data), undefined);
        return this.publish(seq, JSON.stringify(stub), true);
      }
      this.droppedCount += 1;
      log.error({ err, seq }, "event could not be published; dropped");
    }
  }
}

/**
 * The seq of the last event stored on `subject` (0 when there is none): a new run of a task
 * continues its event numbering, so that a client following from seq 1 sees every attempt in order.
 */
export async function lastEventSeq(jsm: JetStreamManager, stream: string, subject: string): Promise<number> {
  try {
    const msg = await jsm.streams.getMessage(stream, { last_by_subj: subject });
    const seq = (msg?.json<{ seq?: unknown }>().seq as number | undefined) ?? 0;
    return Number.isInteger(seq) ? seq : 0;
  } catch {
    return 0;
  }
}
