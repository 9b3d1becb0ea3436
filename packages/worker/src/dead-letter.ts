import type { DeadLetter, ResolvedTask } from "@station-coding/protocol";
import type { Logger } from "pino";
import { publishFailure } from "./publish.js";
import type { RunnerDeps } from "./runner-deps.js";

/** The task message a dead letter keeps, as the stream holds it. */
export interface DeadLetterSource {
  subject: string;
  data: Uint8Array;
  seq: number;
}

/** Why a task is dead-lettered, and what it was. */
export interface DeadLetterEntry {
  source: DeadLetterSource;
  task: ResolvedTask;
  attempts: number;
  reason: string;
  errorCode: string;
}

type DeadLetterDeps = Pick<RunnerDeps, "deadLetters" | "names" | "options" | "redactor">;

/**
 * The dead-letter record of a task, built in this one place: the task message with every secret
 * this worker knows masked (e.g. a token pasted into the prompt); DeadLetters.add removes an inline
 * git token on top.
 */
export function deadLetterRecord(d: DeadLetterDeps, entry: DeadLetterEntry): DeadLetter {
  return {
    taskID: entry.task.taskID,
    ...(d.names.org !== undefined ? { org: d.names.org } : {}),
    reason: entry.reason,
    errorCode: entry.errorCode,
    attempts: entry.attempts,
    subject: entry.source.subject,
    payload: d.redactor.redact(new TextDecoder().decode(entry.source.data)),
    streamSeq: entry.source.seq,
    workerID: d.options.workerID,
    deadAt: new Date().toISOString(),
  };
}

/**
 * Records a dead letter. A failure is logged; with `orThrow`, one that a later try may overcome
 * (NATS unavailable) is thrown instead.
 */
export async function writeDeadLetter(
  d: DeadLetterDeps,
  entry: DeadLetterEntry,
  log: Logger,
  { orThrow = false } = {},
): Promise<void> {
  try {
    await d.deadLetters.add(deadLetterRecord(d, entry));
  } catch (err) {
    const failure = publishFailure(err, d.names.dlqSubject(entry.task.taskID), entry.source.data.byteLength);
    if (orThrow && failure.retryable) throw failure;
    log.error({ err: failure }, "could not write the dead letter");
  }
}
