import type { JetStreamManager, JsMsg } from "@nats-io/jetstream";

/**
 * Every delivery of one task that this worker holds: the message it runs, plus the deliveries of
 * the same taskID that arrive while it runs. Those are redeliveries of the same stream message
 * (after a reconnect or a late in-progress signal) or other messages with the same taskID (a
 * client that published it twice without `Nats-Msg-Id`). None of them runs again: they are kept
 * alive together (`working`) and settled together with the run (ack, nak or term), so that a
 * taskID never runs twice at once on a worker, whatever headers the client sent.
 */
export class TaskDeliveries {
  /** Other stream messages with the same taskID, by stream sequence. */
  private readonly duplicates = new Map<number, JsMsg>();

  constructor(private current: JsMsg) {}

  /** The message being run, as most recently delivered (acks go through the newest delivery). */
  get msg(): JsMsg {
    return this.current;
  }

  /** Every message held: the one run and its duplicates. */
  get all(): JsMsg[] {
    return [this.current, ...this.duplicates.values()];
  }

  /** Holds another delivery of the task; says whether it is the same stream message or another one. */
  attach(msg: JsMsg): "redelivery" | "duplicate" {
    if (msg.seq === this.current.seq) {
      this.current = msg;
      return "redelivery";
    }
    this.duplicates.set(msg.seq, msg);
    return "duplicate";
  }

  /** Restarts the ack-wait clock of every message held. */
  working(): void {
    for (const msg of this.all) msg.working();
  }

  /** Hands every message back for redelivery (after `delay` ms). */
  nak(delay?: number): void {
    for (const msg of this.all) msg.nak(delay);
  }

  /** Acknowledges every message, waiting for the server to confirm the one run. */
  async ackAck(): Promise<void> {
    for (const msg of this.duplicates.values()) msg.ack();
    await this.current.ackAck();
  }
}

/**
 * Stops redelivery for good. On nats-server 2.9 a terminated message stays in a work-queue
 * stream, so it is also deleted from `stream`; the error result (and dead letter) already say
 * what happened.
 */
export async function terminate(
  target: JsMsg | TaskDeliveries,
  reason: string,
  jsm: JetStreamManager,
  stream: string,
): Promise<void> {
  for (const msg of target instanceof TaskDeliveries ? target.all : [target]) {
    msg.term(reason.slice(0, 200));
    await jsm.streams.deleteMessage(stream, msg.seq, false).catch(() => undefined);
  }
}
