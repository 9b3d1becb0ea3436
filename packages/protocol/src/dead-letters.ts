import { DeliverPolicy, jetstream, jetstreamManager } from "@nats-io/jetstream";
import type { NatsConnection } from "@nats-io/transport-node";
import { headers } from "@nats-io/transport-node";
import { Kvm } from "@nats-io/kv";
import { casUpdate } from "./kv-json.js";
import { DeadLetter, TaskLease } from "./records.js";
import type { CodingNames } from "./subjects.js";
import { validateName } from "./names.js";
import { StationError, ErrorCodes } from "./errors.js";

/** Dead letters of one namespace: tasks that will not be retried, kept for inspection and replay. */
export class DeadLetters {
  constructor(
    private readonly nc: NatsConnection,
    readonly names: CodingNames,
  ) {}

  /** Records a dead letter (one per task; a newer one replaces the older). */
  async add(letter: DeadLetter): Promise<void> {
    const js = jetstream(this.nc);
    await js.publish(this.names.dlqSubject(letter.taskID), JSON.stringify(DeadLetter.parse(letter)));
  }

  /** Every dead letter, oldest first. */
  async list(): Promise<DeadLetter[]> {
    const jsm = await jetstreamManager(this.nc);
    const info = await jsm.streams.info(this.names.streams.dlq);
    if (info.state.messages === 0) return [];
    const consumer = await jetstream(this.nc).consumers.get(this.names.streams.dlq, {
      deliver_policy: DeliverPolicy.All,
    });
    const out: DeadLetter[] = [];
    const iter = await consumer.fetch({ max_messages: info.state.messages, expires: 5_000 });
    for await (const msg of iter) {
      const parsed = DeadLetter.safeParse(msg.json());
      if (parsed.success) out.push(parsed.data);
      if (msg.info.pending === 0) break;
    }
    return out;
  }

  /**
   * Publishes a dead task again: clears its old result, its dead letter and its lease (so that
   * the retry budget starts over), then republishes the original message on its subject.
   */
  async replay(taskID: string): Promise<DeadLetter> {
    validateName("taskID", taskID);
    const jsm = await jetstreamManager(this.nc);
    let letter: DeadLetter;
    try {
      const stored = await jsm.streams.getMessage(this.names.streams.dlq, {
        last_by_subj: this.names.dlqSubject(taskID),
      });
      if (!stored) throw new Error("no message found");
      letter = DeadLetter.parse(stored.json());
    } catch (err) {
      throw new StationError(
        ErrorCodes.InvalidTask,
        `dead letter for task ${taskID} not found (see \`station-coding dlq ls\`)`,
        { cause: err },
      );
    }
    const leases = await new Kvm(this.nc).open(this.names.kv.leases);
    const { value } = await casUpdate(leases, `task.${taskID}`, TaskLease, (current) => ({
      taskID,
      state: "replayed" as const,
      attempts: 0,
      generation: (current?.generation ?? 0) + 1,
    }));
    const generation = value.generation ?? 1;
    await jsm.streams.purge(this.names.streams.results, { filter: this.names.resultSubject(taskID) });
    await jsm.streams.purge(this.names.streams.dlq, { filter: this.names.dlqSubject(taskID) });
    const h = headers();
    h.set("Nats-Msg-Id", `${taskID}:replay:${generation}`);
    await jetstream(this.nc).publish(letter.subject, letter.payload, { headers: h });
    return letter;
  }
}
