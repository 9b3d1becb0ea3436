// The run's results as one picture: every case's cost against its baseline, measured in the same run.
import { View, parse } from "vega";
import { compile } from "vega-lite";
import type { TopLevelSpec } from "vega-lite";
import type { ScenarioRecord } from "./report.js";
import type { Row } from "./scenario.js";

/** Rows whose unit is a rate or a speed: more is better, so the cost factor is baseline ÷ ours. */
const RATES = new Set<Row["unit"]>(["tasks/s", "msgs/s", "events/s", "MB/s"]);

/** One bar: how many times slower (or bigger) than its baseline a case was. */
export interface ChartBar {
  scenario: string;
  label: string;
  factor: number;
}

/**
 * The cost factor of every row: ours ÷ baseline for times and sizes, baseline ÷ ours for rates,
 * so 1 is "as fast and as small as raw NATS / direct OpenCode" and 2 is "twice the cost".
 */
export function chartBars(scenarios: ScenarioRecord[]): ChartBar[] {
  const bars: ChartBar[] = [];
  for (const s of scenarios) {
    for (const row of s.rows ?? []) {
      const ours = row.ours.summary.p50;
      const base = row.baseline.summary.p50;
      const factor = RATES.has(row.unit) ? base / ours : ours / base;
      if (!Number.isFinite(factor) || factor <= 0) continue;
      bars.push({ scenario: s.title, label: `${s.title.split(".")[0]}. ${row.case}`, factor });
    }
  }
  return bars;
}

/** A horizontal bar chart of {@link chartBars} on a log scale, as SVG. */
export async function ratioChartSvg(scenarios: ScenarioRecord[], subtitle: string): Promise<string> {
  const bars = chartBars(scenarios);
  const y = { field: "label", type: "nominal", sort: null, title: null, axis: { labelLimit: 0 } } as const;
  const x = {
    field: "factor",
    type: "quantitative",
    scale: { type: "log" },
    title: "times the baseline's time or size (for rates: baseline ÷ ours), log scale",
  } as const;
  const spec: TopLevelSpec = {
    $schema: "https://vega.github.io/schema/vega-lite/v5.json",
    title: {
      text: "station-coding's cost against its raw baseline, same run (1× = no overhead)",
      subtitle,
    },
    width: 520,
    background: "white",
    data: { values: bars },
    layer: [
      {
        // From 1 (as good as the baseline) to the case's factor: right is overhead, left is better.
        mark: { type: "bar" },
        encoding: {
          y,
          x,
          x2: { datum: 1 },
          color: { field: "scenario", type: "nominal", legend: null },
          tooltip: [{ field: "label" }, { field: "factor", format: ".3~r" }],
        },
      },
      {
        mark: { type: "text", align: "left", dx: 4 },
        encoding: { y, x, text: { field: "factor", type: "quantitative", format: ".3~r" } },
      },
      { mark: { type: "rule", strokeDash: [4, 3] }, encoding: { x: { datum: 1 } } },
    ],
  };
  const view = new View(parse(compile(spec).spec), { renderer: "none" });
  try {
    return await view.toSVG();
  } finally {
    view.finalize();
  }
}
