import { mkdir, writeFile } from "node:fs/promises";
import { join } from "node:path";
import type { Machine } from "./machine.js";
import { formatMachine } from "./machine.js";
import { ratioChartSvg } from "./chart.js";
import type { Figure, Row, ScenarioOutput } from "./scenario.js";

/** A scenario as it ended: its rows, or the error that broke it. */
export interface ScenarioRecord extends Partial<ScenarioOutput> {
  id: string;
  title: string;
  seconds: number;
  error?: string;
}

/** Everything a run wrote. */
export interface RunReport {
  mode: "quick" | "full";
  startedAt: string;
  seconds: number;
  command: string;
  machine: Machine;
  /** Load averages when the run ended (the machine's are from the start). */
  loadAverageAtEnd: number[];
  scenarios: ScenarioRecord[];
}

/** A number with about three significant digits and thousands separators. */
export function fmt(x: number): string {
  if (!Number.isFinite(x)) return "n/a";
  const abs = Math.abs(x);
  const digits = abs >= 100 ? 0 : abs >= 10 ? 1 : abs >= 1 ? 2 : 3;
  return x.toLocaleString("en-US", { minimumFractionDigits: digits, maximumFractionDigits: digits });
}

/** The headline and its spread: `p50 (p99 …)` for samples, `median (min–max)` for rounds. */
export function cell(f: Figure): string {
  const s = f.summary;
  if (f.over === "samples") return `${fmt(s.p50)} (p99 ${fmt(s.p99)}, IQR ${fmt(s.p25)}–${fmt(s.p75)})`;
  const each = f.each ?? "runs";
  return s.n > 1 ? `${fmt(s.p50)} (${fmt(s.min)}–${fmt(s.max)}, ${s.n} ${each})` : `${fmt(s.p50)} (1 run)`;
}

/** A difference with its sign. */
function signed(x: number): string {
  return x < 0 ? `−${fmt(-x)}` : `+${fmt(x)}`;
}

/** How far ours is from the baseline: the ratio of medians and, where it means something, the difference. */
export function overhead(row: Row): string {
  const ours = row.ours.summary.p50;
  const base = row.baseline.summary.p50;
  const ratio = `${fmt(ours / base)}×`;
  switch (row.unit) {
    case "ms":
      return `${ratio} (${signed(ours - base)} ms)`;
    case "tasks/s":
    case "msgs/s":
      return `${ratio} (${signed(1000 / ours - 1000 / base)} ms/task)`;
    case "events/s":
      return `${ratio} (${signed(1e6 / ours - 1e6 / base)} µs/event)`;
    case "MiB":
    case "KiB":
      return `${ratio} (${signed(ours - base)} ${row.unit})`;
    case "MB/s":
      return ratio;
  }
}

/** The results table, one row per case, each next to its baseline. */
export function markdownTable(scenarios: ScenarioRecord[]): string {
  const lines = [
    "| scenario | case | unit | station-coding | baseline (same run) | ours ÷ baseline |",
    "| --- | --- | --- | --- | --- | --- |",
  ];
  for (const s of scenarios) {
    if (s.error !== undefined) {
      lines.push(
        `| ${s.title} | **failed**: ${s.error.split("\n")[0]?.replaceAll("|", "\\|") ?? ""} | | | | |`,
      );
      continue;
    }
    for (const row of s.rows ?? []) {
      lines.push(
        `| ${s.title} | ${row.case} | ${row.unit} | ${cell(row.ours)} | ${cell(row.baseline)}: ${row.baselineName} | ${overhead(row)} |`,
      );
    }
  }
  return lines.join("\n");
}

/** The whole report as markdown: machine, table, notes per scenario. */
export function markdownReport(report: RunReport): string {
  const notes = report.scenarios
    .filter((s) => (s.notes?.length ?? 0) > 0)
    .map((s) => [`### ${s.title}`, "", ...(s.notes ?? []).map((n) => `- ${n}`)].join("\n"));
  return [
    `# station-coding benchmarks (${report.mode})`,
    "",
    `Run ${report.startedAt}, ${fmt(report.seconds)} s, \`${report.command}\``,
    "",
    "```",
    formatMachine(report.machine),
    `load average at end: ${report.loadAverageAtEnd.join(", ")}`,
    "```",
    "",
    "Latencies: p50 (p99, interquartile range) over every sample. Rates: median (min–max) over runs.",
    "",
    markdownTable(report.scenarios),
    "",
    "![each case against its baseline](latest.svg)",
    "",
    ...notes.flatMap((n) => [n, ""]),
  ].join("\n");
}

/** Writes `<dir>/latest.{json,md,svg}` and a timestamped copy of each; returns the paths. */
export async function writeReport(dir: string, report: RunReport): Promise<string[]> {
  await mkdir(dir, { recursive: true });
  const stamp = report.startedAt.replace(/[:.]/g, "-");
  const json = JSON.stringify(report, null, 2) + "\n";
  const md = markdownReport(report);
  const svg = await ratioChartSvg(
    report.scenarios,
    `${report.command}, ${report.startedAt.slice(0, 16).replace("T", " ")} UTC, ${report.machine.cpu}`,
  );
  const files: [string, string][] = [
    [join(dir, "latest.json"), json],
    [join(dir, "latest.md"), md],
    [join(dir, "latest.svg"), svg],
    [join(dir, `${report.mode}-${stamp}.json`), json],
    [join(dir, `${report.mode}-${stamp}.md`), md.replace("](latest.svg)", `](${report.mode}-${stamp}.svg)`)],
    [join(dir, `${report.mode}-${stamp}.svg`), svg],
  ];
  for (const [path, text] of files) await writeFile(path, text);
  return files.map(([path]) => path);
}
