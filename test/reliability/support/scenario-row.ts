// One row of the suite's summary table. A test attaches its row to its own task meta, which vitest
// carries from the test process to the reporter (support/summary-reporter.ts) in the main process.
import type { TestContext } from "vitest";

/** What one scenario measured. */
export interface ScenarioRow {
  /** Short name, e.g. "1 worker SIGKILL". */
  scenario: string;
  /** Tasks published. */
  submitted: number;
  /** Tasks that ended with the expected result (completed, or the expected error for hostile input). */
  completed: number;
  /** Tasks without a stored result at the end. */
  lost: number;
  /** Tasks with more than one result message, or a driver run that began after their result. */
  duplicated: number;
  /** Kill (or restart) to completion of the affected tasks, when the scenario measures it. */
  recovery?: string;
  /** Wall time of the scenario in ms. */
  durationMs: number;
  /** Further figures, shown as `key=value`. */
  figures: Record<string, string | number>;
}

declare module "vitest" {
  interface TaskMeta {
    /** The summary row of a reliability scenario. */
    reliability?: ScenarioRow;
  }
}

/**
 * Attaches `row` to the running test, so that the summary shows it even when an assertion after
 * this call fails.
 */
export function recordRow(context: TestContext, row: ScenarioRow): void {
  context.task.meta.reliability = row;
}

/** Milliseconds as seconds with one decimal, e.g. `2.4 s`. */
export function seconds(ms: number): string {
  return `${(ms / 1000).toFixed(1)} s`;
}

/** `max 2.9 s, median 2.4 s (n=8)` for a list of durations in ms. */
export function describeDurations(values: number[]): string {
  if (values.length === 0) return "n/a";
  const sorted = [...values].sort((a, b) => a - b);
  const median = sorted[Math.floor((sorted.length - 1) / 2)] ?? 0;
  const max = sorted[sorted.length - 1] ?? 0;
  return `max ${seconds(max)}, median ${seconds(median)} (n=${values.length})`;
}
