// 5. Real OpenCode with the scripted model: submit-to-result through dispatcher -> worker ->
// OpenCodeDriver -> `opencode serve`, against a direct blocking `POST /session/{id}/message` to the
// same `opencode serve` for the same scenario (write hello.txt, then answer).
import { execFile } from "node:child_process";
import { access, rm } from "node:fs/promises";
import { join } from "node:path";
import { promisify } from "node:util";
import type { CodingDispatcher } from "@station-coding/dispatcher";
import { createFileScenario, tempDir } from "@station-coding/testkit";
import { SecretRedactor, createLogger } from "@station-coding/worker";
import { startOpenCode } from "@station-coding/testkit/worker";
import { BenchEnv, expectStatus, taskID } from "../bench-env.js";
import { eventTimes, firstOf } from "../event-times.js";
import type { Scenario, ScenarioContext, ScenarioOutput } from "../scenario.js";
import { latencyRow } from "../scenario.js";
import { now, summarize } from "../stats.js";

const PROMPT = "please create hello";
const git = promisify(execFile);

interface SystemRun {
  elapsed: number;
  taskID: string;
  opencodeID: string;
  submitAt: number;
  resultAt: number;
}

async function systemRun(dispatcher: CodingDispatcher): Promise<SystemRun> {
  const started = now();
  const submitAt = Date.now();
  const handle = await dispatcher.submit({ taskID: taskID("oc"), prompt: PROMPT });
  const result = expectStatus(await handle.result({ timeout: "60s" }));
  const elapsed = now() - started;
  if (!result.changes?.files.some((f) => f.path === "hello.txt")) {
    throw new Error(`task ${result.taskID}: hello.txt was not created (${JSON.stringify(result.changes)})`);
  }
  return {
    elapsed,
    taskID: result.taskID,
    opencodeID: result.session.opencodeID,
    submitAt,
    resultAt: Date.now(),
  };
}

const AGENT_EVENTS = new Set(["text", "thinking", "tool_start", "tool_end", "permission"]);

/** Median ms per phase of the system runs, from the worker's event timestamps. */
async function phases(env: BenchEnv, dispatcher: CodingDispatcher, runs: SystemRun[]) {
  const events = await eventTimes(
    env,
    dispatcher,
    runs.map((r) => r.taskID),
  );
  const rows: [string, number[]][] = [
    ["submit -> prompt_sent (pickup, workspace from the template repository, opencode session create)", []],
    ["prompt_sent -> last agent event (the model turn as OpenCode streams it)", []],
    ["last agent event -> patch artifact (turn-end detection, session export, collect changes)", []],
    ["patch artifact -> dispatcher has the result (session record, lease, publish result)", []],
  ];
  for (const run of runs) {
    const seen = events.get(run.taskID) ?? [];
    const prompt = firstOf(seen, "prompt_sent");
    const agent = seen.filter((e) => AGENT_EVENTS.has(e.type)).at(-1)?.at;
    const artifact = firstOf(seen, "artifact");
    if (prompt === undefined || agent === undefined || artifact === undefined) continue;
    const marks = [run.submitAt, prompt, agent, artifact, run.resultAt];
    for (const [k, row] of rows.entries()) row[1].push(marks[k + 1]! - marks[k]!);
  }
  return Object.fromEntries(rows.map(([phase, xs]) => [phase, summarize(xs).p50]));
}

/**
 * A new session and one blocking prompt, straight to opencode serve, in a fresh git repository
 * like the worker's workspaces (prepared before the clock starts).
 */
async function directRun(url: string, auth: Record<string, string>): Promise<number> {
  const dir = await tempDir("bench-oc-direct");
  try {
    await git("git", ["init", "--quiet", "--initial-branch=main"], { cwd: dir });
    await git(
      "git",
      [
        "-c",
        "user.name=bench",
        "-c",
        "user.email=bench@localhost",
        "commit",
        "--quiet",
        "--allow-empty",
        "-m",
        "init",
      ],
      { cwd: dir },
    );
    const query = `directory=${encodeURIComponent(dir)}`;
    const json = { "content-type": "application/json", ...auth };
    const started = now();
    // A title, as the driver gives one: without it opencode asks the model for one in the background.
    const created = await fetch(`${url}/session?${query}`, {
      method: "POST",
      headers: json,
      body: JSON.stringify({ title: "bench direct" }),
    });
    if (!created.ok) throw new Error(`POST /session: HTTP ${created.status} ${await created.text()}`);
    const { id } = (await created.json()) as { id: string };
    const answered = await fetch(`${url}/session/${id}/message?${query}`, {
      method: "POST",
      headers: json,
      body: JSON.stringify({ parts: [{ type: "text", text: PROMPT }] }),
    });
    if (!answered.ok)
      throw new Error(`POST /session/${id}/message: HTTP ${answered.status} ${await answered.text()}`);
    const reply = (await answered.json()) as { info?: { error?: unknown } };
    const elapsed = now() - started;
    if (reply.info?.error) throw new Error(`direct prompt failed: ${JSON.stringify(reply.info.error)}`);
    await access(join(dir, "hello.txt")).catch(() => {
      throw new Error(`direct prompt in ${dir}: hello.txt was not created`);
    });
    return elapsed;
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

export const opencode: Scenario = {
  id: "opencode",
  title: "5. Real OpenCode, scripted model",
  async run(ctx: ScenarioContext): Promise<ScenarioOutput> {
    // Quick mode: one run per side and no warm-up; it only proves the path works.
    const runs = ctx.quick ? 1 : 5;
    await using env = await BenchEnv.start();
    const started = now();
    // The direct side talks to opencode serve with no station task behind its session, which the
    // sandbox refuses: this scenario compares the system with OpenCode alone, both unconfined
    // (scenario 9 measures the sandbox).
    const oc = await startOpenCode([createFileScenario({ match: "create hello" })], {
      workspaceRoot: env.workspaceDir,
      sandbox: { mode: "off" },
      logger: createLogger(new SecretRedactor([]), { destination: env.logs }),
    });
    env.defer(() => oc.close());
    const startup = now() - started;
    const auth = oc.driver.managedServer?.authHeaders() ?? {};
    const dispatcher = await env.dispatcher();
    await env.worker({ driver: oc.driver, concurrency: 1 });
    if (!ctx.quick) {
      await systemRun(dispatcher);
      await directRun(oc.driver.url, auth);
    }

    const ours: SystemRun[] = [];
    const base: number[] = [];
    for (let round = 0; round < runs; round += 1) {
      const pair = [
        async () => ours.push(await systemRun(dispatcher)),
        async () => base.push(await directRun(oc.driver.url, auth)),
      ];
      for (const run of round % 2 === 0 ? pair : pair.reverse()) await run();
    }
    const breakdown = await phases(env, dispatcher, ours);
    return {
      rows: [
        latencyRow(
          "create-file scenario (2 model calls, 1 write tool call)",
          summarize(ours.map((r) => r.elapsed)),
          summarize(base),
          "direct POST /session + POST /session/{id}/message (blocking) to the same opencode serve",
        ),
      ],
      notes: [
        `${runs} run(s) per side${ctx.quick ? "" : " after one warm-up each"}, alternating; a new session and a new workspace (git repository) each run; opencode serve started in ${(startup / 1000).toFixed(1)} s (not counted).`,
        "Where the system's time goes (median ms, worker event timestamps): " +
          Object.entries(breakdown)
            .map(([phase, ms]) => `${phase}: ${ms.toFixed(0)}`)
            .join("; "),
        "After every task the OpenCode driver reads the session and its messages over the server's HTTP API and stores them as the session's export (so that another worker can restore it) before the result is built.",
      ],
      details: { opencodeStartupMs: startup, phasesMedianMs: breakdown },
    };
  },
};
