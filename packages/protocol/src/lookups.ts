import { jetstreamManager } from "@nats-io/jetstream";
import type { JetStreamManager, StoredMsg } from "@nats-io/jetstream";
import type { NatsConnection } from "@nats-io/transport-node";
import type { z } from "zod";
import type { CancelRequest } from "./records.js";
import { DeadLetter, cancelRequestFrom } from "./records.js";
import { TaskResult } from "./result.js";
import type { CodingNames } from "./subjects.js";

async function lastFor(
  jsm: JetStreamManager,
  stream: string,
  subject: string,
): Promise<StoredMsg | undefined> {
  try {
    const msg = await jsm.streams.getMessage(stream, { last_by_subj: subject });
    return msg ?? undefined;
  } catch (err) {
    if (err instanceof Error && /no message found|message not found/i.test(err.message)) return undefined;
    throw err;
  }
}

/**
 * A stored record, or undefined when the message is not one: anyone allowed to publish on a
 * subject can store junk there, and junk must read as "none", not fail every lookup of the task.
 */
function parseStored<S extends z.ZodType>(schema: S, msg: StoredMsg | undefined): z.output<S> | undefined {
  if (!msg) return undefined;
  try {
    const parsed = schema.safeParse(msg.json());
    return parsed.success ? parsed.data : undefined;
  } catch {
    return undefined;
  }
}

/** Point lookups of stored results, cancels and dead letters by taskID. */
export class TaskLookups {
  private constructor(
    private readonly jsm: JetStreamManager,
    readonly names: CodingNames,
  ) {}

  /** Binds lookups to a connection and namespace. */
  static async create(nc: NatsConnection, names: CodingNames): Promise<TaskLookups> {
    return new TaskLookups(await jetstreamManager(nc), names);
  }

  /** The stored result of a task, or undefined when none was published (or it aged out, or is not a result). */
  async result(taskID: string): Promise<TaskResult | undefined> {
    const msg = await lastFor(this.jsm, this.names.streams.results, this.names.resultSubject(taskID));
    return parseStored(TaskResult, msg);
  }

  /** The stored cancel request of a task, or undefined (see {@link cancelRequestFrom} for what counts). */
  async cancel(taskID: string): Promise<CancelRequest | undefined> {
    const msg = await lastFor(this.jsm, this.names.streams.cancels, this.names.cancelSubject(taskID));
    if (!msg) return undefined;
    try {
      return cancelRequestFrom(msg.json());
    } catch {
      return undefined;
    }
  }

  /** The dead letter of a task, or undefined. */
  async deadLetter(taskID: string): Promise<DeadLetter | undefined> {
    const msg = await lastFor(this.jsm, this.names.streams.dlq, this.names.dlqSubject(taskID));
    return parseStored(DeadLetter, msg);
  }
}
