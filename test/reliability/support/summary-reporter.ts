// A vitest reporter that prints the figures table of the reliability suite after the run: one row
// per scenario, collected from the `reliability` task meta each test records (see scenario-row.ts).
// With RELIABILITY_SUMMARY=<path> it also writes the table there as Markdown.
import { writeFileSync } from "node:fs";
import type { Reporter, TestCase, TestModule } from "vitest/node";
import type { ScenarioRow } from "./scenario-row.js";

interface Collected {
  row: ScenarioRow;
  state: string;
  file: string;
}

function cell(value: string | number | undefined): string {
  return String(value ?? "").replaceAll("|", "\\|");
}

/** The Markdown table of collected rows, in the order the scenarios are numbered. */
export function renderTable(rows: readonly Collected[]): string {
  const sorted = [...rows].sort((a, b) =>
    a.row.scenario.localeCompare(b.row.scenario, "en", { numeric: true }),
  );
  const lines = [
    "| Scenario | Outcome | Submitted | Completed | Lost | Duplicated | Recovery | Duration | Other figures |",
    "| --- | --- | ---: | ---: | ---: | ---: | --- | ---: | --- |",
  ];
  for (const { row, state } of sorted) {
    const figures = Object.entries(row.figures)
      .map(([key, value]) => `${key}=${value}`)
      .join("; ");
    lines.push(
      `| ${cell(row.scenario)} | ${state} | ${row.submitted} | ${row.completed} | ${row.lost} | ${row.duplicated} | ${cell(
        row.recovery ?? "-",
      )} | ${(row.durationMs / 1000).toFixed(1)} s | ${cell(figures)} |`,
    );
  }
  return lines.join("\n");
}

/** Prints the summary table at the end of the run (and writes it to `$RELIABILITY_SUMMARY`). */
export class SummaryReporter implements Reporter {
  private readonly rows: Collected[] = [];

  onTestCaseResult(testCase: TestCase): void {
    const row = testCase.meta().reliability;
    if (!row) return;
    const result = testCase.result();
    this.rows.push({
      row,
      state: result.state === "passed" ? "pass" : result.state === "failed" ? "FAIL" : result.state,
      file: testCase.module.moduleId,
    });
  }

  onTestRunEnd(testModules: readonly TestModule[]): void {
    // Rows of tests that failed before recording one would be missing: name them too.
    const recorded = new Set(this.rows.map((r) => r.file));
    const silent = testModules.filter((m) => !recorded.has(m.moduleId) && m.state() === "failed");
    const table = renderTable(this.rows);
    const out = [
      "",
      "Reliability suite: figures per scenario (lost/duplicated must be 0; see docs/reliability.md)",
      "",
      table,
      ...silent.map((m) => `(no figures: ${m.relativeModuleId} failed before recording its row)`),
      "",
    ].join("\n");
    process.stdout.write(`${out}\n`);
    const target = process.env.RELIABILITY_SUMMARY;
    if (target) writeFileSync(target, `${table}\n`);
  }
}
