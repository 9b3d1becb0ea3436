import type { DeadLetter, DeadLetters } from "@station-coding/protocol";
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
   */
  async replay(taskID: string): Promise<DeadLetter> {
    validateName("taskID", taskID);
    return guarded(`replaying dead letter ${taskID}`, () => this.letters.replay(taskID));
  }
}
