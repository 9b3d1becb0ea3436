/** How to undo one thing the demo started. */
export interface CleanupStepOptions {
  /** Longest the undo may take, in ms, or a function deciding when the step runs. @default 10_000 */
  timeout?: number | (() => number);
  /**
   * A synchronous last resort (kill a process, remove a dir): run when the undo fails or times out,
   * and at process exit when the step never got to run (a second Ctrl-C, a closed stdout pipe).
   */
  force?: () => void;
}

interface Step extends CleanupStepOptions {
  what: string;
  undo: () => Promise<unknown>;
  done: boolean;
}

const DEFAULT_STEP_TIMEOUT = 10_000;
const TIMED_OUT = Symbol("timed out");

/**
 * What the demo started, undone in reverse order. Every step runs even when an earlier one fails or
 * hangs (each has a time limit, then its `force`), so a Ctrl-C or an error leaves no process or
 * temp dir behind.
 */
export class Cleanup {
  private readonly steps: Step[] = [];
  private running: Promise<string[]> | undefined;
  private readonly onExit = (): void => {
    for (const step of [...this.steps].reverse()) if (!step.done) forceQuietly(step);
  };

  constructor() {
    process.on("exit", this.onExit);
  }

  /** Registers `undo` for something just started; `what` names it in failure messages. */
  defer(what: string, undo: () => Promise<unknown>, options: CleanupStepOptions = {}): void {
    this.steps.push({ what, undo, ...options, done: false });
  }

  /** Runs every step, last registered first; resolves with one message per step that failed. Idempotent. */
  run(): Promise<string[]> {
    this.running ??= this.runSteps().finally(() => process.off("exit", this.onExit));
    return this.running;
  }

  private async runSteps(): Promise<string[]> {
    const failures: string[] = [];
    for (const step of [...this.steps].reverse()) {
      const timeout =
        typeof step.timeout === "function" ? step.timeout() : (step.timeout ?? DEFAULT_STEP_TIMEOUT);
      let timer: NodeJS.Timeout | undefined;
      const limit = new Promise<typeof TIMED_OUT>((resolve) => {
        timer = setTimeout(() => resolve(TIMED_OUT), timeout);
      });
      try {
        const outcome = await Promise.race([step.undo(), limit]);
        if (outcome === TIMED_OUT) {
          failures.push(`${step.what}: did not finish within ${timeout}ms${step.force ? ", forced" : ""}`);
          forceQuietly(step);
        }
      } catch (err) {
        failures.push(`${step.what}: ${err instanceof Error ? err.message : String(err)}`);
        forceQuietly(step);
      } finally {
        clearTimeout(timer);
        step.done = true;
      }
    }
    return failures;
  }
}

function forceQuietly(step: Step): void {
  try {
    step.force?.();
  } catch {
    // A last resort that fails has nothing left to fall back on; the other steps still run.
  }
}
