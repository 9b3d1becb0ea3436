// 9. The agent's OS sandbox: what it costs per tool call and per task, against the same work with
// the sandbox off, in the same run. Two workers on two NATS servers, each with its own real
// `opencode serve` (scripted model): one sandboxed (the default), one with `sandbox: off`.
import { execFile } from "node:child_process";
import { mkdir, realpath, rm } from "node:fs/promises";
import { join } from "node:path";
import { promisify } from "node:util";
import type { CodingDispatcher } from "@station-coding/dispatcher";
import type { StreamEvent } from "@station-coding/protocol";
import { multiStepScenario, tempDir } from "@station-coding/testkit";
import { pino } from "pino";
import {
  NetworkGate,
  SandboxProxy,
  SecretRedactor,
  createLogger,
  resolveSandbox,
  systemLayout,
  writeShellScript,
} from "@station-coding/worker/internal";
import { startOpenCode } from "@station-coding/testkit/worker";
import { BenchEnv, expectStatus, taskID } from "../bench-env.js";
import type { Scenario, ScenarioContext, ScenarioOutput } from "../scenario.js";
import { latencyRow } from "../scenario.js";
import { now, summarize } from "../stats.js";

const run = promisify(execFile);
const PROMPT = "do the multi step thing";

interface Side {
  env: BenchEnv;
  dispatcher: CodingDispatcher;
  tasks: number[];
  tools: Record<string, number[]>;
}

async function startSide(mode: "on" | "off", ctx: ScenarioContext): Promise<Side> {
  const env = await BenchEnv.start();
  const oc = await startOpenCode([multiStepScenario({ match: "multi step" })], {
    workspaceRoot: env.workspaceDir,
    sandbox: { mode },
    logger: createLogger(new SecretRedactor([]), { destination: env.logs }),
  });
  env.defer(() => oc.close());
  await env.worker({ driver: oc.driver, concurrency: 1 });
  ctx.log(`opencode ${mode === "on" ? "sandboxed" : "unconfined"} at ${oc.driver.url}`);
  return { env, dispatcher: await env.dispatcher(), tasks: [], tools: {} };
}

/** One task (write, edit, read, bash): its submit-to-result time and its tools' own durations. */
async function task(side: Side): Promise<void> {
  const started = now();
  const handle = await side.dispatcher.submit({ taskID: taskID("sb"), prompt: PROMPT });
  expectStatus(await handle.result({ timeout: "60s" }));
  side.tasks.push(now() - started);
  const events: StreamEvent[] = [];
  for await (const event of handle.events({ settle: "1s" })) events.push(event);
  for (const e of events) {
    if (e.type !== "tool_end" || e.tool?.duration === undefined || !e.tool.name) continue;
    (side.tools[e.tool.name] ??= []).push(e.tool.duration);
  }
}

/** `<shell> -c true` n times: the sandbox's own cost per command, without OpenCode around it. */
async function shellRuns(shell: string, workspace: string, n: number): Promise<number[]> {
  const out: number[] = [];
  for (let i = 0; i < n; i += 1) {
    const started = now();
    await run(shell, ["-c", "true"], { cwd: workspace, env: { STATION_SANDBOX_WORKSPACE: workspace } });
    out.push(now() - started);
  }
  return out;
}

async function shellCosts(n: number): Promise<{ deny: number[]; proxied: number[]; bare: number[] }> {
  const dir = await realpath(await tempDir("bench-sandbox-shell"));
  const workspace = join(dir, "root", "ws");
  await mkdir(workspace, { recursive: true });
  const sandbox = await resolveSandbox({});
  const gate = new NetworkGate("allow");
  const proxy = new SandboxProxy(join(dir, "proxy.sock"), gate, pino({ level: "silent" }));
  await proxy.start();
  try {
    const layout = await systemLayout();
    const root = join(dir, "root");
    const deny = await writeShellScript(join(dir, "deny"), {
      bwrap: sandbox.bwrap,
      layout,
      workspaceRoot: root,
    });
    const proxied = await writeShellScript(join(dir, "allow"), {
      bwrap: sandbox.bwrap,
      layout,
      workspaceRoot: root,
      proxySocket: proxy.socketPath,
      socat: sandbox.socat,
    });
    const result = { deny: [] as number[], proxied: [] as number[], bare: [] as number[] };
    for (let round = 0; round < 3; round += 1) {
      result.bare.push(...(await shellRuns("/bin/bash", workspace, Math.ceil(n / 3))));
      result.deny.push(...(await shellRuns(deny, workspace, Math.ceil(n / 3))));
      result.proxied.push(...(await shellRuns(proxied, workspace, Math.ceil(n / 3))));
    }
    return result;
  } finally {
    await proxy.stop();
    await rm(dir, { recursive: true, force: true });
  }
}

export const sandbox: Scenario = {
  id: "sandbox",
  title: "9. The agent's OS sandbox, on against off",
  async run(ctx: ScenarioContext): Promise<ScenarioOutput> {
    const runs = ctx.quick ? 1 : 8;
    const shells = await shellCosts(ctx.quick ? 3 : 60);
    const on = await startSide("on", ctx);
    const off = await startSide("off", ctx).catch(async (err: unknown) => {
      await on.env.close();
      throw err;
    });
    try {
      if (!ctx.quick) {
        await task(on);
        await task(off);
        for (const side of [on, off]) {
          side.tasks.length = 0;
          side.tools = {};
        }
      }
      for (let round = 0; round < runs; round += 1) {
        const pair = [() => task(on), () => task(off)];
        for (const step of round % 2 === 0 ? pair : pair.reverse()) await step();
      }
    } finally {
      await on.env.close();
      await off.env.close();
    }
    const toolRow = (name: string, what: string) =>
      latencyRow(
        `${name} tool call through OpenCode (${what})`,
        summarize(on.tools[name] ?? []),
        summarize(off.tools[name] ?? []),
        "the same tool call with sandbox: off",
      );
    return {
      rows: [
        latencyRow(
          "task: 4 tool calls (write, edit, read, bash), 5 model calls",
          summarize(on.tasks),
          summarize(off.tasks),
          "the same task with sandbox: off",
        ),
        toolRow("bash", "a nested bwrap per command, network allow"),
        toolRow("write", "the path check through the bridge"),
        toolRow("read", "the path check through the bridge"),
        latencyRow(
          "sandboxing shell -c true, network deny (bwrap only)",
          summarize(shells.deny),
          summarize(shells.bare),
          "bash -c true",
        ),
        latencyRow(
          "sandboxing shell -c true, network allow (bwrap + socat forwarder to the proxy)",
          summarize(shells.proxied),
          summarize(shells.bare),
          "bash -c true",
        ),
      ],
      notes: [
        `${runs} task(s) per side${ctx.quick ? "" : " after one warm-up each"}, alternating; tool durations are OpenCode's own (tool_end duration), over every call of those tasks.`,
        "Both sides run a real opencode serve with the scripted model; the sandboxed one inside bwrap (its own user and PID namespaces, the workspace root and its data dir writable, nothing else), its bash tool through the sandboxing shell, its file tools checked by the worker through the station plugin's tool.execute.before hook.",
        `The shell rows run the generated sandboxing shell directly, ${shells.bare.length} times per variant, in rounds: the sandbox's own cost per command.`,
      ],
    };
  },
};
