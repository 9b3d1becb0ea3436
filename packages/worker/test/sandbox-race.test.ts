// A hostile agent that races the file tools' path check, with real OpenCode and a scripted model.
// In one model step a bash call keeps swapping symbolic links in its workspace between a directory
// inside and targets outside (another task's workspace, another org's, OpenCode's data directory,
// the server's /proc), while many write, read and edit calls go through those links in parallel.
// Whatever the timing, nothing outside the workspace is created, changed or read, every attempt is
// an error the agent sees, and the legitimate writes beside them land.
import { existsSync, readFileSync, readdirSync, realpathSync } from "node:fs";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { StreamEvent, TaskResult } from "@station-coding/protocol";
import { uniqueName } from "@station-coding/testkit";
import type { Scenario, ScenarioContext, ScriptedToolCall } from "@station-coding/testkit";
import type { Env } from "@station-coding/testkit/worker";
import {
  eventsOf,
  publishTask,
  startEnv,
  startOpenCode,
  startWorker,
  waitResult,
} from "@station-coding/testkit/worker";
import { fileSnapshot, neighbours, toolCall, workdirOf } from "./support/hostile-agent.js";

const MARK = uniqueName("raced");
/** Rounds of file calls through every link; each round is one call of each kind per target. */
const ROUNDS = 8;
/** How long the swapping loop runs: longer than the file calls take to stream in. */
const SWAP_SECONDS = 4;

let env: Env;
let oc: Awaited<ReturnType<typeof startOpenCode>>;
let otherTask: string;
let otherOrg: string;
let dataDir: string;

/** A link in the workspace, the target outside it and what reading through it would reveal. */
interface Target {
  link: string;
  outside: () => string;
  /** Path below the link that the read calls ask for. */
  readPath: string;
  /** Text that appears only in the outside file: seeing it in any event is a leak. */
  secret: () => string;
  /** Whether write and edit calls go through this link too. */
  writes: boolean;
}

const targets: Target[] = [
  {
    link: "l-task",
    outside: () => otherTask,
    readPath: "secret.txt",
    secret: () => "other task secret",
    writes: true,
  },
  {
    link: "l-org",
    outside: () => otherOrg,
    readPath: "secret.txt",
    secret: () => "globex secret",
    writes: true,
  },
  {
    link: "l-data",
    outside: () => dataDir,
    readPath: "config/opencode/package.json",
    secret: () => '"@opencode-ai/plugin"',
    writes: true,
  },
  // OpenCode's own /proc: its environment holds the bridge token and the server's password.
  {
    link: "l-proc",
    outside: () => "/proc/self",
    readPath: "status",
    secret: () => "TracerPid",
    writes: false,
  },
];

const ws = workdirOf;
const call = toolCall;

/** Step 1: a decoy directory inside for every link, and the links, pointing outside. */
function setup(): ScriptedToolCall {
  return call("setup", "bash", () => ({
    description: "prepare",
    command: targets
      .map((t) =>
        [
          `mkdir -p in-${t.link}/$(dirname ${t.readPath})`,
          `printf 'inside decoy secret\\n' > in-${t.link}/${t.readPath}`,
          `ln -s ${t.outside()} ${t.link}`,
        ].join(" && "),
      )
      .join(" && "),
  }));
}

/**
 * Step 2: the swapper (a bash call that flips every link between its decoy inside and its target
 * outside until the time is up, and leaves them pointing outside), then the file calls through
 * the links and the legitimate writes, streamed in over the swapper's run.
 */
function race(): ScriptedToolCall[] {
  const swapper = () =>
    [
      "import os, time",
      `pairs = ${JSON.stringify(targets.map((t) => [t.link, `in-${t.link}`, t.outside()]))}`,
      `end = time.time() + ${SWAP_SECONDS}`,
      "def point(link, target):",
      "    os.symlink(target, link + '.tmp')",
      "    os.rename(link + '.tmp', link)",
      "i = 0",
      "while time.time() < end:",
      "    for link, inside, outside in pairs:",
      "        point(link, inside if i % 2 == 0 else outside)",
      "    i += 1",
      "    time.sleep(0.0003)",
      "for link, inside, outside in pairs:",
      "    point(link, outside)",
      "print('swapped', i)",
    ].join("\n");
  const calls: ScriptedToolCall[] = [
    call("swapper", "bash", () => ({
      description: "swap links",
      command: `python3 - <<'EOF'\n${swapper()}\nEOF`,
    })),
  ];
  for (let round = 0; round < ROUNDS; round += 1) {
    calls.push(
      call(`legit-${round}`, "write", (ctx) => ({
        filePath: `${ws(ctx)}/legit-${round}.txt`,
        content: `legit ${round}\n`,
      })),
    );
    for (const t of targets) {
      const through = (ctx: ScenarioContext, rest: string) => `${ws(ctx)}/${t.link}/${rest}`;
      calls.push(call(`read-${t.link}-${round}`, "read", (ctx) => ({ filePath: through(ctx, t.readPath) })));
      if (!t.writes) continue;
      calls.push(
        call(`write-${t.link}-${round}`, "write", (ctx) => ({
          filePath: through(ctx, `${MARK}-${round}.txt`),
          content: MARK,
        })),
        call(`edit-${t.link}-${round}`, "edit", (ctx) => ({
          filePath: through(ctx, t.readPath),
          oldString: "secret",
          newString: `${MARK}-${round}`,
        })),
      );
    }
  }
  return calls;
}

function raceScenario(): Scenario {
  return {
    name: "race",
    match: "race the check",
    steps: [
      { toolCalls: [setup()] },
      // Chunks arrive 10 ms apart, so the file calls start one after another over the swapper's run.
      { toolCalls: race(), chunkDelayMs: 10 },
      { text: "The race is over." },
    ],
  };
}

/** Every path under `dir` whose name contains `mark`. */
function findMarked(dir: string, mark: string): string[] {
  const found: string[] = [];
  const walk = (d: string) => {
    for (const entry of readdirSync(d, { withFileTypes: true })) {
      const path = join(d, entry.name);
      if (entry.name.includes(mark)) found.push(path);
      if (entry.isDirectory()) walk(path);
    }
  };
  walk(dir);
  return found;
}

beforeAll(async () => {
  env = await startEnv("acme");
  ({ otherTask, otherOrg } = await neighbours(env.workspaceDir));
  oc = await startOpenCode([raceScenario()], { workspaceRoot: env.workspaceDir });
  dataDir = realpathSync(oc.driver.managedServer!.dataDir);
  await startWorker(env, oc.driver, { orgs: ["acme"], ackWait: 5_000 });
}, 60_000);
afterAll(async () => {
  await env?.close();
  await oc?.close();
});

describe("a hostile agent racing the file tools' path check", () => {
  let result: TaskResult;
  let events: StreamEvent[];
  let before: Record<string, string>;
  let workspace: string;

  beforeAll(async () => {
    before = { ...fileSnapshot(otherTask), ...fileSnapshot(otherOrg) };
    await publishTask(env, { taskID: "race-1", workspace: { name: "racer" }, prompt: "race the check" });
    result = await waitResult(env, "race-1", 120_000);
    events = await eventsOf(env, "race-1");
    workspace = result.workspace.path;
  }, 150_000);

  const ends = () =>
    new Map(events.filter((e) => e.type === "tool_end").map((e) => [e.tool?.callID ?? "", e.tool!]));

  it("completes the task, and the legitimate writes land", () => {
    expect(result.status, JSON.stringify(result)).toBe("completed");
    for (let round = 0; round < ROUNDS; round += 1) {
      expect(ends().get(`legit-${round}`)?.status).toBe("completed");
      expect(readFileSync(join(workspace, `legit-${round}.txt`), "utf8")).toBe(`legit ${round}\n`);
    }
    expect(ends().get("swapper")?.output).toMatch(/swapped \d+/);
  });

  it("creates or changes no file outside the workspace", () => {
    expect({ ...fileSnapshot(otherTask), ...fileSnapshot(otherOrg) }).toEqual(before);
    expect(findMarked(env.workspaceDir, MARK).filter((p) => !p.startsWith(`${workspace}/`))).toEqual([]);
    expect(findMarked(dataDir, MARK)).toEqual([]);
  });

  it("reads nothing outside the workspace", () => {
    const text = JSON.stringify(events) + JSON.stringify(result);
    for (const t of targets) expect(text, t.link).not.toContain(t.secret());
    const token = oc.driver.managedServer?.processEnv.STATION_TOOLS_TOKEN ?? "missing";
    expect(text).not.toContain(token);
  });

  it("shows the agent every attempt through a link as an error, and touches no decoy", () => {
    const calls = race().filter((c) => /^(read|write|edit)-l-/.test(c.id ?? ""));
    expect(calls.length).toBe(ROUNDS * 10);
    for (const c of calls) {
      const end = ends().get(c.id!);
      expect(end?.status, `${c.id}: ${JSON.stringify(end)}`).toBe("error");
      expect(end?.error, c.id).toContain("outside the task's workspace");
    }
    // A call checked while its link pointed inside and run after it did again would land in a decoy.
    expect(findMarked(workspace, MARK)).toEqual([]);
    for (const t of targets)
      expect(readFileSync(join(workspace, `in-${t.link}`, t.readPath), "utf8")).toBe("inside decoy secret\n");
    expect(existsSync(join(workspace, "l-task"))).toBe(true);
  });
});
