import { headers } from "@nats-io/transport-node";
import type { ArtifactRef, TaskResult } from "@station-coding/protocol";
import { ErrorCodes, StationError, finishedRecord, messageBudget } from "@station-coding/protocol";
import type { Logger } from "pino";
import { fitJson } from "./fit-message.js";
import { publishBounded } from "./publish.js";
import type { RunnerDeps } from "./runner-deps.js";
import type { TaskArtifacts } from "./task-artifacts.js";

/** Attempts of one result publish while the server is unavailable (about a minute in all). */
const RESULT_PUBLISH_ATTEMPTS = 30;

/**
 * Publishes task results on `<resultSubject>.<taskID>`: redacted, signed when the worker has a
 * key, within the server's max_payload, deduplicated by `Nats-Msg-Id` (`<taskID>:result[:<generation>]`)
 * and not swallowed by a forged result stored under that id first.
 */
export class ResultPublisher {
  constructor(
    private readonly d: Pick<
      RunnerDeps,
      "names" | "js" | "driver" | "redactor" | "signer" | "lookups" | "maxPayload" | "taskIndex" | "metrics"
    >,
    private readonly artifacts: TaskArtifacts,
  ) {}

  /**
   * Publishes a task's result, bounded: one too large for a message is stored whole in the object
   * store and published with its text cut (or, when cutting is not enough, as a small
   * `RESULT_TOO_LARGE` error result), and a publish is tried at most {@link RESULT_PUBLISH_ATTEMPTS}
   * times.
   *
   * Once it is stored, it is counted in the metrics and the task index gets the final record
   * (best effort, bounded), while `whenStored` (which must not throw) runs alongside.
   *
   * @throws StationError when it could not be published; `retryable` says whether a later try may.
   */
  async publish(
    result: TaskResult,
    generation: number,
    log: Logger,
    whenStored?: () => Promise<void>,
  ): Promise<void> {
    await this.publishResult(result, generation, log);
    this.d.metrics?.recordResult(result);
    await Promise.all([
      this.d.taskIndex.record(this.d.redactor.redactValue(finishedRecord(result, generation))),
      whenStored?.(),
    ]);
  }

  private async publishResult(result: TaskResult, generation: number, log: Logger): Promise<void> {
    const h = headers();
    let msgID = generation > 0 ? `${result.taskID}:result:${generation}` : `${result.taskID}:result`;
    const subject = this.d.names.resultSubject(result.taskID);
    // An unconfined agent is said in every result, so no client mistakes it for a sandboxed one.
    const said = this.d.driver.sandbox?.mode === "off" ? { ...result, sandbox: "off" as const } : result;
    const data = new TextEncoder().encode(await this.message(this.d.redactor.redactValue(said), log));
    this.d.signer?.sign(data, h);
    for (let forged = 0; ; forged += 1) {
      h.set("Nats-Msg-Id", msgID);
      const ack = await publishBounded(this.d.js, subject, data, {
        headers: h,
        attempts: RESULT_PUBLISH_ATTEMPTS,
        onRetry: (err, attempt) => {
          if (attempt === 1 || attempt % 10 === 0)
            log.warn({ err, attempt }, "result publish failed, retrying");
        },
      });
      if (!ack.duplicate || forged >= 3) return;
      // Our own retried publish is fine; a result stored under our message id by someone else
      // (a forged publish) must not swallow the real one.
      const stored = await this.d.lookups.result(result.taskID).catch(() => undefined);
      if (!stored || stored.workerID === result.workerID) return;
      msgID = `${result.taskID}:result:${result.workerID ?? "worker"}:${Date.now()}`;
    }
  }

  /**
   * Publishes the error result of a task that no run will report (an invalid task, one given up):
   * a failure a later try may overcome is thrown, so that the message is handled again; any other
   * is logged with `what` and the task ends without a result.
   */
  async publishOrLog(result: TaskResult, log: Logger, what: string): Promise<void> {
    await this.publish(result, 0, log).catch((err: unknown) => {
      if (err instanceof StationError && err.retryable) throw err;
      log.error({ err }, what);
    });
  }

  /** The result's message body, within the server's max_payload. */
  private async message(result: TaskResult, log: Logger): Promise<string> {
    const whole = JSON.stringify(result);
    const budget = messageBudget(this.d.maxPayload());
    const bytes = Buffer.byteLength(whole);
    if (bytes <= budget) return whole;
    let fullResult: ArtifactRef | undefined;
    try {
      fullResult = await this.artifacts.store(result.taskID, "result.json", Buffer.from(whole), "result");
    } catch (err) {
      log.warn({ err }, "could not store an oversized result whole");
    }
    const cut = fitJson(result, budget, (r) => ({
      ...r,
      truncated: true,
      ...(fullResult ? { fullResult } : {}),
    }));
    log.warn(
      { bytes, budget, stored: fullResult?.key, cut: cut !== undefined },
      "result larger than a message may be",
    );
    if (cut !== undefined) return cut;
    const where = fullResult
      ? `the whole result is in ${fullResult.bucket} at ${fullResult.key}`
      : "it could not be stored either";
    return JSON.stringify({
      taskID: result.taskID,
      status: "error",
      error: `the result of task ${result.taskID} (${result.status}) is ${bytes} bytes, more than a message may hold (${budget}); ${where}`,
      errorType: "ResultTooLargeError",
      errorCode: ErrorCodes.ResultTooLarge,
      retryable: false,
      session: result.session,
      workspace: result.workspace,
      metrics: result.metrics,
      ...(result.workerID !== undefined ? { workerID: result.workerID } : {}),
      ...(result.org !== undefined ? { org: result.org } : {}),
      ...(result.completedAt !== undefined ? { completedAt: result.completedAt } : {}),
      ...(result.metadata !== undefined ? { metadata: result.metadata } : {}),
      truncated: true,
      ...(fullResult ? { fullResult } : {}),
    } satisfies TaskResult);
  }
}
