import { DeliverPolicy, jetstream, jetstreamManager } from "@nats-io/jetstream";
import type { NatsConnection } from "@nats-io/transport-node";
import { headers } from "@nats-io/transport-node";
import { setTimeout as delay } from "node:timers/promises";
import { Kvm } from "@nats-io/kv";
import type { KV } from "@nats-io/kv";
import { Objm } from "@nats-io/obj";
import { casUpdate } from "./kv-json.js";
import { MAX_ERROR_BYTES, cutUtf8, messageBudget, utf8Length } from "./limits.js";
import { DeadLetter, TaskLease } from "./records.js";
import type { CodingNames } from "./subjects.js";
import { deadLetterPayloadKey } from "./subjects.js";
import { validateName } from "./names.js";
import { safeJson } from "./plain-data.js";
import { TaskIndex, queuedRecord } from "./task-index.js";
import { Task } from "./task.js";
import { StationError, ErrorCodes } from "./errors.js";

/** Dead letters of one namespace: tasks that will not be retried, kept for inspection and replay. */
export class DeadLetters {
  constructor(
    private readonly nc: NatsConnection,
    readonly names: CodingNames,
  ) {}

  /**
   * Records a dead letter (one per task; a newer one replaces the older), without the task's
   * inline git token. A letter that would not fit in a message (the server's max_payload) keeps
   * the task message in the object store instead (`payloadRef`), where a replay finds it.
   */
  async add(letter: DeadLetter): Promise<void> {
    const js = jetstream(this.nc);
    let stored = withoutInlineToken(DeadLetter.parse(letter));
    stored = { ...stored, reason: cutUtf8(stored.reason, MAX_ERROR_BYTES) };
    let data = JSON.stringify(stored);
    if (utf8Length(data) > messageBudget(this.nc.info?.max_payload)) {
      const key = deadLetterPayloadKey(letter.taskID);
      const store = await new Objm(this.nc).open(this.names.objectStore);
      const info = await store.putBlob({ name: key }, new TextEncoder().encode(stored.payload));
      stored = {
        ...stored,
        payload: "",
        payloadRef: {
          bucket: this.names.objectStore,
          key,
          kind: "dead-letter-payload",
          size: info.size,
          digest: info.digest,
        },
      };
      data = JSON.stringify(stored);
    }
    await js.publish(this.names.dlqSubject(letter.taskID), data);
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
   * the retry budget starts over), then republishes the original message on its subject. A task
   * whose inline git token was removed needs `credentials` (checked before anything changes).
   */
  async replay(
    taskID: string,
    credentials: ReplayCredentials = {},
    options: { settleTimeoutMs?: number } = {},
  ): Promise<DeadLetter> {
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
    if (letter.payloadRef)
      letter = { ...letter, payload: await this.storedPayload(letter, letter.payloadRef.key) };
    const payload = replayPayload(letter, credentials);
    const leases = await new Kvm(this.nc).open(this.names.kv.leases);
    await settledLease(leases, taskID, options.settleTimeoutMs ?? REPLAY_SETTLE_TIMEOUT_MS);
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
    await jetstream(this.nc).publish(letter.subject, payload, { headers: h });
    // The replay's generation starts the task's index record over (best effort, never throws).
    const task = Task.safeParse(safeJson(payload));
    await new TaskIndex(this.nc, this.names).record({
      ...(task.success ? queuedRecord(task.data) : queuedRecord({ taskID })),
      generation,
    });
    if (letter.payloadRef) {
      // The dead letter is gone; its copy of the task would be an orphan (a new dead letter stores it again).
      const store = await new Objm(this.nc).open(this.names.objectStore);
      await store.delete(letter.payloadRef.key).catch(() => undefined);
    }
    return letter;
  }

  /** The task message a dead letter keeps in the object store. */
  private async storedPayload(letter: DeadLetter, key: string): Promise<string> {
    const store = await new Objm(this.nc).open(this.names.objectStore);
    const data = await store.getBlob(key);
    if (!data) {
      throw new StationError(
        ErrorCodes.InvalidTask,
        `dead letter for task ${letter.taskID}: its task message is not in ${this.names.objectStore} at ${key} any more; it cannot be replayed`,
      );
    }
    return new TextDecoder().decode(data);
  }
}

/** How long a replay waits for the dead-lettered run to settle its lease. */
export const REPLAY_SETTLE_TIMEOUT_MS = 15_000;

/**
 * Waits until no live run holds the task's lease. A worker writes the dead letter before it
 * publishes the error result and settles the lease (`publishing`, then `done`): a replay in that
 * window would race the settling run (its result published after the replay's purge, its lease
 * write over the replay's). A held lease that expires (its worker died) counts as settled.
 */
async function settledLease(leases: KV, taskID: string, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const entry = await leases.get(`task.${taskID}`);
    const parsed = entry && entry.operation === "PUT" ? TaskLease.safeParse(entry.json()) : undefined;
    const lease = parsed?.success ? parsed.data : undefined;
    const held =
      lease !== undefined &&
      (lease.state === "running" || lease.state === "publishing") &&
      (lease.expiresAt === undefined || lease.expiresAt > Date.now());
    if (!held) return;
    if (Date.now() >= deadline) {
      throw new StationError(
        ErrorCodes.WaitTimeout,
        `dead letter ${taskID}: its last run (worker ${lease.workerID ?? "unknown"}) is still settling (lease ${lease.state}); retry the replay in a moment`,
        { retryable: true },
      );
    }
    await delay(Math.min(100, Math.max(1, deadline - Date.now())));
  }
}

/** Git credentials for replaying a dead task whose inline token was removed. */
export interface ReplayCredentials {
  /** Key in the secrets bucket that holds the token (`workspace.git.tokenFromKV`). */
  tokenFromKV?: string;
  /** The token itself (`workspace.git.token`); prefer `tokenFromKV`. */
  token?: string;
}

type TaskJson = { workspace?: { git?: Record<string, unknown> } } & Record<string, unknown>;

function parseTaskJson(payload: string): TaskJson | undefined {
  try {
    const value: unknown = JSON.parse(payload);
    return typeof value === "object" && value !== null && !Array.isArray(value)
      ? (value as TaskJson)
      : undefined;
  } catch {
    return undefined;
  }
}

/** The dead letter with `workspace.git.token` taken out of its payload. */
function withoutInlineToken(letter: DeadLetter): DeadLetter {
  const task = parseTaskJson(letter.payload);
  const git = task?.workspace?.git;
  if (!task || typeof git !== "object" || git === null || !("token" in git)) return letter;
  delete git.token;
  return { ...letter, payload: JSON.stringify(task), gitTokenRemoved: true };
}

/** The task message to publish again, with the replay's credentials put in. */
function replayPayload(letter: DeadLetter, credentials: ReplayCredentials): string {
  const given = Object.entries(credentials).filter(([, v]) => v !== undefined);
  if (given.length === 0) {
    if (letter.gitTokenRemoved !== true) return letter.payload;
    throw new StationError(
      ErrorCodes.InvalidTask,
      `dead letter for task ${letter.taskID}: the task carried an inline git token (workspace.git.token), ` +
        "which dead letters do not keep; replay it with tokenFromKV (a key in the secrets bucket) or a token",
    );
  }
  if (given.length > 1) {
    throw new StationError(ErrorCodes.InvalidTask, "replay: give tokenFromKV or token, not both");
  }
  const task = parseTaskJson(letter.payload);
  const git = task?.workspace?.git;
  if (!task || typeof git !== "object" || git === null) {
    throw new StationError(
      ErrorCodes.InvalidTask,
      `dead letter for task ${letter.taskID}: the task has no git repository (workspace.git) to give credentials to`,
    );
  }
  delete git.token;
  delete git.tokenFromKV;
  if (credentials.tokenFromKV !== undefined)
    git.tokenFromKV = validateName("tokenFromKV", credentials.tokenFromKV);
  else git.token = credentials.token;
  return JSON.stringify(task);
}
