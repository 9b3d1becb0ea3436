import { jetstreamManager } from "@nats-io/jetstream";
import type { JetStreamManager, StoredMsg } from "@nats-io/jetstream";
import type { MsgHdrs, NatsConnection } from "@nats-io/transport-node";
import type { z } from "zod";
import type { CancelRequest } from "./records.js";
import { DeadLetter, cancelRequestFrom } from "./records.js";
import { TaskResult } from "./result.js";
import { verifyResultSignature } from "./result-signature.js";
import type { CodingNames } from "./subjects.js";

/** Options of {@link TaskLookups.create}. */
export interface TaskLookupsOptions {
  /**
   * Public nkeys of the workers whose results are trusted: a stored result without a valid
   * signature by one of them reads as "none". Empty: every stored result is accepted.
   * @default []
   */
  trustedSigners?: readonly string[];
  /** JetStream manager to read through (e.g. one with an API prefix). @default one on the connection */
  jsm?: JetStreamManager;
  /** Told about each stored result that was refused, and why. */
  onRejected?: (taskID: string, reason: string) => void;
}

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

/**
 * Why a message on a task's result subject is not that task's authentic result, or undefined when
 * it is: it must name the task (and the org), and carry a trusted signature when signers are set.
 */
export function resultProblem(
  result: TaskResult,
  taskID: string,
  org: string | undefined,
  msg: { data: Uint8Array; header?: MsgHdrs; headers?: MsgHdrs },
  trustedSigners: readonly string[],
): string | undefined {
  if (result.taskID !== taskID) return `it names task ${JSON.stringify(result.taskID)}`;
  if (org !== undefined && result.org !== undefined && result.org !== org) {
    return `it names org ${JSON.stringify(result.org)}`;
  }
  const check = verifyResultSignature(msg.data, msg.header ?? msg.headers, trustedSigners);
  return check.ok ? undefined : check.reason;
}

/** Point lookups of stored results, cancels and dead letters by taskID. */
export class TaskLookups {
  private constructor(
    private readonly jsm: JetStreamManager,
    readonly names: CodingNames,
    private readonly options: TaskLookupsOptions,
  ) {}

  /** Binds lookups to a connection and namespace. */
  static async create(
    nc: NatsConnection,
    names: CodingNames,
    options: TaskLookupsOptions = {},
  ): Promise<TaskLookups> {
    return new TaskLookups(options.jsm ?? (await jetstreamManager(nc)), names, options);
  }

  /**
   * The stored result of a task, or undefined when none was published (or it aged out, or is not
   * a result of this task, or no trusted worker signed it).
   */
  async result(taskID: string): Promise<TaskResult | undefined> {
    const msg = await lastFor(this.jsm, this.names.streams.results, this.names.resultSubject(taskID));
    const result = parseStored(TaskResult, msg);
    if (!msg || !result) return undefined;
    const problem = resultProblem(result, taskID, this.names.org, msg, this.options.trustedSigners ?? []);
    if (problem !== undefined) {
      this.options.onRejected?.(taskID, problem);
      return undefined;
    }
    return result;
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
