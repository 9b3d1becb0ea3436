import type { DeadLetter, DeadLetters, ReplayCredentials } from "@station-coding/protocol";
import { validateName } from "@station-coding/protocol";
import { guarded } from "./errors.js";

/** Dead letters of the namespace: tasks that will not be retried, for inspection and replay. */
export class DeadLettersApi {
  /** @internal */
  constructor(private readonly letters: DeadLetters) {}

  /** Every dead letter, oldest first. */
  async list(): Promise<DeadLetter[]> {
    return guarded("listing dead letters", () => this.letters.list());
  }

  /**
   * Runs a dead task again: clears its result, dead letter and retry count and republishes the
   * original message. Follow it with `dispatcher.task(taskID)`.
   *
   * A task that carried an inline git token (`workspace.git.token`) lost it when it was
   * dead-lettered (`letter.gitTokenRemoved`): pass `credentials` (a secrets-bucket key, or the
   * token) or the replay is refused before anything changes.
   *
   * A dead letter appears before its run has settled the task's lease: the replay waits for that
   * (up to `options.settleTimeoutMs`, 15 s by default, or the lease's expiry), then fails with a
   * retryable `WAIT_TIMEOUT` error having changed nothing.
   */
  async replay(
    taskID: string,
    credentials: ReplayCredentials = {},
    options: { settleTimeoutMs?: number } = {},
  ): Promise<DeadLetter> {
    validateName("taskID", taskID);
    return guarded(`replaying dead letter ${taskID}`, () =>
      this.letters.replay(taskID, credentials, options),
    );
  }
}
