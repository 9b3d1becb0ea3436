// `npm run bench`: every scenario next to its baseline, measured in the same run on this machine.
// Prints the machine and a markdown table, and writes JSON and markdown to --out.
//
//   npm run bench                     full run (under 10 minutes on 2 cores)
//   npm run bench -- --quick          small counts, for CI: fails only when a scenario breaks
//   npm run bench -- --only round-trip,cancel --out /tmp/bench
import { resolve } from "node:path";
import { parseArgs } from "node:util";
import { setTimeout as delay } from "node:timers/promises";
import { takeWorkerProblems } from "./bench-env.js";
import { describeMachine, formatMachine, loadAverageNow } from "./machine.js";
import type { RunReport, ScenarioRecord } from "./report.js";
import { markdownTable, writeReport } from "./report.js";
import type { Scenario } from "./scenario.js";
import { artifacts } from "./scenarios/artifacts.js";
import { backlog } from "./scenarios/backlog.js";
import { cancel } from "./scenarios/cancel.js";
import { eventStreaming } from "./scenarios/event-streaming.js";
import { consoleScenario } from "./scenarios/console.js";
import { gateway } from "./scenarios/gateway.js";
import { memory } from "./scenarios/memory.js";
import { opencode } from "./scenarios/opencode.js";
import { processes } from "./scenarios/processes.js";
import { roundTrip } from "./scenarios/round-trip.js";
import { sandbox } from "./scenarios/sandbox.js";
import { throughput } from "./scenarios/throughput.js";

const SCENARIOS: Scenario[] = [
  roundTrip,
  throughput,
  processes,
  eventStreaming,
  artifacts,
  opencode,
  backlog,
  memory,
  cancel,
  sandbox,
  gateway,
  consoleScenario,
];

const USAGE = `usage: npm run bench -- [--quick] [--out DIR] [--only ID,...]

  --quick    small counts (CI): checks that every scenario works, says little about speed
  --out DIR  where latest.json / latest.md (and timestamped copies) go (default: bench-results/)
  --only     scenario ids: ${SCENARIOS.map((s) => s.id).join(", ")}`;

function parse(): { quick: boolean; out: string; only: Scenario[] } {
  const { values } = parseArgs({
    options: {
      quick: { type: "boolean", default: false },
      out: { type: "string", default: "bench-results" },
      only: { type: "string" },
      help: { type: "boolean", short: "h", default: false },
    },
    strict: true,
  });
  if (values.help) {
    console.log(USAGE);
    process.exit(0);
  }
  let only = SCENARIOS;
  if (values.only !== undefined) {
    const ids = values.only.split(",").map((id) => id.trim());
    const unknown = ids.filter((id) => !SCENARIOS.some((s) => s.id === id));
    if (unknown.length > 0) {
      console.error(`--only ${unknown.join(",")}: no such scenario\n\n${USAGE}`);
      process.exit(2);
    }
    only = SCENARIOS.filter((s) => ids.includes(s.id));
  }
  return { quick: values.quick, out: resolve(values.out), only };
}

/** A scenario that ran past its limit: the run stops (the scenario may still be running). */
class ScenarioTimeout extends Error {
  override name = "ScenarioTimeout";
}

/** Rejects after `ms` unless `signal` aborts first (then it never settles). */
async function overdue(ms: number, id: string, signal: AbortSignal): Promise<never> {
  try {
    await delay(ms, undefined, { signal });
  } catch {
    return new Promise<never>(() => undefined);
  }
  throw new ScenarioTimeout(`scenario ${id} did not finish within ${ms / 1000} s; stopping the run`);
}

async function main(): Promise<number> {
  const { quick, out, only } = parse();
  const machine = await describeMachine();
  const mode = quick ? "quick" : "full";
  console.log(`station-coding benchmarks (${mode})\n${formatMachine(machine)}\n`);
  const started = performance.now();
  const startedAt = new Date().toISOString();
  const records: ScenarioRecord[] = [];
  // A scenario that hangs must not hang CI: past its limit the run stops and reports it.
  const limit = quick ? 60_000 : 300_000;
  let aborted = false;
  for (const scenario of only) {
    const t0 = performance.now();
    const log = (message: string) => console.error(`[${scenario.id}] ${message}`);
    log("start");
    takeWorkerProblems();
    const limiter = new AbortController();
    const running = scenario.run({ quick, log });
    // Once overdue, its own failure comes too late to report and must not crash the run.
    running.catch(() => undefined);
    try {
      const output = await Promise.race([running, overdue(limit, scenario.id, limiter.signal)]);
      records.push({
        id: scenario.id,
        title: scenario.title,
        seconds: (performance.now() - t0) / 1000,
        ...output,
      });
      log(`done in ${((performance.now() - t0) / 1000).toFixed(1)} s`);
    } catch (err) {
      const error = err instanceof Error ? (err.stack ?? err.message) : String(err);
      records.push({
        id: scenario.id,
        title: scenario.title,
        seconds: (performance.now() - t0) / 1000,
        error,
      });
      log(`FAILED: ${error}`);
      const problems = takeWorkerProblems();
      if (problems.length > 0) log(`last worker warnings and errors:\n${problems.join("\n")}`);
      // A scenario still running in the background would skew every later one.
      if (err instanceof ScenarioTimeout) {
        aborted = true;
        break;
      }
    } finally {
      limiter.abort();
    }
  }
  const report: RunReport = {
    mode,
    startedAt,
    seconds: (performance.now() - started) / 1000,
    command: `npm run bench${quick ? " -- --quick" : ""}`,
    machine,
    loadAverageAtEnd: loadAverageNow(),
    scenarios: records,
  };
  console.log(markdownTable(records));
  for (const r of records) {
    if (r.notes?.length) console.log(`\n${r.title}\n${r.notes.map((n) => `  - ${n}`).join("\n")}`);
  }
  const files = await writeReport(out, report);
  console.log(
    `\n${report.seconds.toFixed(1)} s (load average at end ${report.loadAverageAtEnd.join(", ")}); wrote ${files.slice(0, 3).join(", ")}`,
  );
  const failed = records.filter((r) => r.error !== undefined);
  if (failed.length > 0 || aborted) {
    console.error(`benchmark scenarios failed: ${failed.map((r) => r.id).join(", ")}`);
    return 1;
  }
  return 0;
}

// Exit explicitly: a broken scenario may leave a timer or socket behind.
main().then(
  (code) => process.exit(code),
  (err: unknown) => {
    console.error(err);
    process.exit(1);
  },
);
