import type { Summary } from "./stats.js";

/** Units of the figures in the report. */
export type Unit = "ms" | "tasks/s" | "msgs/s" | "events/s" | "MB/s" | "MiB" | "KiB";

/**
 * One measured figure: `p50` is the headline. Latencies keep every sample (spread = p99 and IQR);
 * rates keep one value per round (spread = min..max over rounds).
 */
export interface Figure {
  summary: Summary;
  /** `samples`: the summary is over individual operations; `rounds`: over one figure per round. */
  over: "samples" | "rounds";
  /** What one of the `n` figures of a `rounds` summary is, for the report. @default "runs" */
  each?: string;
}

/** A row of the report: one case of a scenario next to its baseline, measured in the same run. */
export interface Row {
  case: string;
  unit: Unit;
  better: "lower" | "higher";
  ours: Figure;
  baseline: Figure;
  /** What the baseline is, e.g. "raw JetStream publish + pull + core reply". */
  baselineName: string;
}

/** What a scenario hands back. */
export interface ScenarioOutput {
  rows: Row[];
  /** Findings and definitions printed under the table (where the time goes, what was measured). */
  notes: string[];
  /** Anything else worth keeping in the JSON (breakdowns, raw variants). */
  details?: Record<string, unknown>;
}

/** What a scenario may use while it runs. */
export interface ScenarioContext {
  /** Small counts for CI: keeps every scenario working, says little about speed. */
  quick: boolean;
  /** A progress line on stderr. */
  log(message: string): void;
}

/** One benchmark scenario with its baseline. */
export interface Scenario {
  /** Short id used by `--only`. */
  id: string;
  title: string;
  run(ctx: ScenarioContext): Promise<ScenarioOutput>;
}

/** A latency row from individual samples. */
export function latencyRow(
  name: string,
  ours: Summary,
  baseline: Summary,
  baselineName: string,
  unit: Unit = "ms",
): Row {
  return {
    case: name,
    unit,
    better: "lower",
    ours: { summary: ours, over: "samples" },
    baseline: { summary: baseline, over: "samples" },
    baselineName,
  };
}

/** A rate row from one figure per round. */
export function rateRow(
  name: string,
  unit: Unit,
  ours: Summary,
  baseline: Summary,
  baselineName: string,
  each = "runs",
): Row {
  return {
    case: name,
    unit,
    better: "higher",
    ours: { summary: ours, over: "rounds", each },
    baseline: { summary: baseline, over: "rounds", each },
    baselineName,
  };
}
