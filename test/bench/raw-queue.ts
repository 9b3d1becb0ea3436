// The raw baseline of task delivery: a JetStream work-queue stream with one durable pull consumer,
// consumers that ack and publish a core-NATS reply, and a client that publishes and awaits replies.
// Nothing of station-coding is involved; the stream and consumer are configured like the task
// stream and the task consumer (file storage, work-queue retention, explicit ack).
import {
  AckPolicy,
  DeliverPolicy,
  DiscardPolicy,
  RetentionPolicy,
  StorageType,
  jetstream,
  jetstreamManager,
} from "@nats-io/jetstream";
import type { ConsumerMessages, JetStreamClient, JsMsg } from "@nats-io/jetstream";
import { headers, nanos } from "@nats-io/transport-node";
import type { NatsConnection, Subscription } from "@nats-io/transport-node";
import { now } from "./stats.js";

/**
 * How raw consumers pull: `consume` is nats.js's buffered pull (default prefetch); `next` asks for
 * one message per free slot, which is what a station-coding worker does.
 */
export type PullMode = "consume" | "next";

const ID_HEADER = "Bench-Id";

/** A raw work queue named `name` (stream `RAW_<name>`, subjects `raw.<name>.*`). */
export class RawWorkQueue {
  private readonly waiters = new Map<string, () => void>();
  private readonly arrivals: number[] = [];
  private arrivalTarget = 0;
  private onTarget: (() => void) | undefined;
  private stopConsumers: (() => Promise<void>)[] = [];
  private counter = 0;
  private sub: Subscription | undefined;

  private constructor(
    private readonly js: JetStreamClient,
    readonly stream: string,
    readonly subject: string,
    readonly replyPrefix: string,
  ) {}

  /** Creates the stream and durable consumer and subscribes `client` to the replies. */
  static async create(client: NatsConnection, name: string): Promise<RawWorkQueue> {
    const jsm = await jetstreamManager(client);
    const stream = `RAW_${name}`;
    const subject = `raw.${name}.task`;
    await jsm.streams.add({
      name: stream,
      subjects: [subject],
      retention: RetentionPolicy.Workqueue,
      storage: StorageType.File,
      discard: DiscardPolicy.Old,
      duplicate_window: nanos(120_000),
      max_msg_size: 1024 * 1024,
    });
    await jsm.consumers.add(stream, {
      durable_name: "raw-workers",
      ack_policy: AckPolicy.Explicit,
      deliver_policy: DeliverPolicy.All,
      filter_subject: subject,
      ack_wait: nanos(30_000),
      max_ack_pending: 1000,
      max_deliver: -1,
      max_waiting: 512,
    });
    const replyPrefix = `raw.${name}.reply`;
    const queue = new RawWorkQueue(jetstream(client), stream, subject, replyPrefix);
    queue.sub = client.subscribe(`${replyPrefix}.*`, {
      callback: (err, msg) => {
        if (!err) queue.arrived(msg.subject.slice(replyPrefix.length + 1));
      },
    });
    await client.flush();
    return queue;
  }

  /**
   * Starts one consumer per connection: each acks a message and publishes a core reply.
   * With `next`, each consumer keeps `slots` pulls of one message outstanding.
   */
  async startConsumers(connections: NatsConnection[], mode: PullMode, slots = 4): Promise<void> {
    for (const nc of connections) {
      const consumer = await jetstream(nc).consumers.get(this.stream, "raw-workers");
      const handle = (msg: JsMsg): void => {
        msg.ack();
        nc.publish(`${this.replyPrefix}.${msg.headers?.get(ID_HEADER) ?? ""}`, "ok");
      };
      if (mode === "consume") {
        const messages: ConsumerMessages = await consumer.consume({ callback: handle });
        this.stopConsumers.push(async () => {
          await messages.close();
        });
      } else {
        let running = true;
        const loops = Array.from({ length: slots }, async () => {
          while (running) {
            const msg = await consumer.next({ expires: 1_000 }).catch(() => null);
            if (msg) handle(msg);
          }
        });
        this.stopConsumers.push(async () => {
          running = false;
          await Promise.all(loops);
        });
      }
    }
  }

  /** Stops the consumers (messages not yet pulled stay queued). */
  async stop(): Promise<void> {
    await Promise.all(this.stopConsumers.splice(0).map((stop) => stop()));
  }

  /** Removes the reply subscription. */
  close(): void {
    this.sub?.unsubscribe();
  }

  /** Publishes one message and waits for its reply; returns the round trip in ms. */
  async roundTrip(payload: string): Promise<number> {
    const id = this.nextID();
    const started = now();
    const replied = new Promise<void>((resolve) => this.waiters.set(id, resolve));
    await this.publish(id, payload);
    await replied;
    return now() - started;
  }

  /**
   * Publishes `count` messages at once (each publish awaits its own ack, all concurrently) and
   * resolves with the times (ms since the first publish) at which their replies arrived, in order.
   */
  async burst(count: number, payload: string): Promise<number[]> {
    const started = now();
    const done = this.expect(count);
    await Promise.all(Array.from({ length: count }, () => this.publish(this.nextID(), payload)));
    await done;
    return this.arrivals.map((t) => t - started);
  }

  /** Queues `count` messages (for a backlog), `window` publishes in flight at a time. */
  async enqueue(count: number, payload: string, window = 256): Promise<void> {
    let sent = 0;
    const lanes = Array.from({ length: window }, async () => {
      while (sent < count) {
        sent += 1;
        await this.publish(this.nextID(), payload);
      }
    });
    await Promise.all(lanes);
  }

  /** Resolves once `count` more replies arrived; their arrival times are in {@link replyTimes}. */
  expect(count: number): Promise<void> {
    this.arrivals.length = 0;
    this.arrivalTarget = count;
    return new Promise((resolve) => (this.onTarget = resolve));
  }

  /** Arrival times (performance.now()) of the replies counted by the last {@link expect}. */
  get replyTimes(): readonly number[] {
    return this.arrivals;
  }

  private async publish(id: string, payload: string): Promise<void> {
    const h = headers();
    h.set(ID_HEADER, id);
    await this.js.publish(this.subject, payload, { headers: h });
  }

  private nextID(): string {
    this.counter += 1;
    return `m${this.counter}`;
  }

  private arrived(id: string): void {
    const waiter = this.waiters.get(id);
    if (waiter) {
      this.waiters.delete(id);
      waiter();
    }
    if (this.arrivalTarget > 0) {
      this.arrivals.push(now());
      if (this.arrivals.length === this.arrivalTarget) {
        this.arrivalTarget = 0;
        this.onTarget?.();
      }
    }
  }
}
