import { spawn } from "node:child_process";
import { fileURLToPath } from "node:url";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { CodingDispatcher } from "@station-coding/dispatcher";
import type { StreamEvent } from "@station-coding/protocol";
import { waitFor } from "@station-coding/testkit";
import { script } from "@station-coding/testkit/worker";
import type { Step } from "@station-coding/testkit/worker";
import type { Env } from "./support/env.js";
import { startEnv } from "./support/env.js";
import { account } from "./support/ledger.js";
import { recordRow, seconds } from "./support/scenario-row.js";

const child = fileURLToPath(new URL("./support/dispatcher-child.ts", import.meta.url));
const tsconfig = fileURLToPath(new URL("./tsconfig.json", import.meta.url));

let env: Env;
beforeAll(async () => {
  env = await startEnv();
});
afterAll(async () => {
  await env?.close();
});

describe("4 dispatcher killed mid-task", () => {
  it("re-attaches with dispatcher.task(taskID): events replay from seq 1 without gaps, and the result arrives", async (context) => {
    const started = Date.now();
    await env.startWorker();
    const taskID = "long-task";
    const steps: Step[] = [];
    for (let i = 1; i <= 8; i += 1) steps.push({ text: `step ${i}. ` }, { sleep: 350 });
    steps.push({ tool: { name: "bash", args: { command: "make" } } }, { text: "done" });

    const proc = spawn(
      process.execPath,
      ["--import", "tsx", child, env.servers.join(","), JSON.stringify({ taskID, prompt: script(...steps) })],
      { env: { ...process.env, TSX_TSCONFIG_PATH: tsconfig }, stdio: ["ignore", "pipe", "pipe"] },
    );
    let output = "";
    proc.stdout.on("data", (chunk: Buffer) => (output += chunk.toString()));
    proc.stderr.on("data", (chunk: Buffer) => (output += chunk.toString()));
    const printed = (): StreamEvent[] =>
      [...output.matchAll(/^event (\{.*\})$/gm)].map((m) => JSON.parse(m[1]!) as StreamEvent);
    await waitFor(() => printed().length >= 7 || proc.exitCode !== null, {
      timeout: 30_000,
      message: "the child dispatcher to print 7 events",
    });
    expect(proc.exitCode, output).toBeNull();
    proc.kill("SIGKILL");
    const killAt = Date.now();
    await waitFor(() => proc.signalCode !== null, { message: "the child dispatcher to die" });
    const seenByChild = printed();

    const dispatcher = await CodingDispatcher.connect({ servers: env.servers, ensureTopology: false });
    try {
      const handle = dispatcher.task(taskID);
      const replayed: StreamEvent[] = [];
      let firstReplayAt = 0;
      for await (const event of handle.events({ signal: AbortSignal.timeout(60_000) })) {
        firstReplayAt ||= Date.now();
        replayed.push(event);
      }
      const result = await handle.result({ timeout: "60s" });
      const resultAt = Date.now();
      const acc = await account(env, [taskID]);
      const seqs = replayed.map((e) => e.seq);
      const gaps = seqs.filter((seq, i) => seq !== i + 1).length;
      const leaks = await env.secretLeaks();
      recordRow(context, {
        scenario: "4 dispatcher SIGKILLed mid-task, re-attached",
        submitted: 1,
        completed: acc.completed,
        lost: acc.lost.length,
        duplicated: acc.duplicated.length,
        recovery: `${seconds(firstReplayAt - killAt)} to the first replayed event, ${seconds(resultAt - killAt)} to the result`,
        durationMs: Date.now() - started,
        figures: {
          "events before kill": seenByChild.length,
          "events replayed": replayed.length,
          "seq gaps": gaps,
          "secret leaks": leaks.length,
        },
      });
      expect(result.status).toBe("completed");
      expect(result.result).toContain("step 8.");
      expect(seqs).toEqual(replayed.map((_, i) => i + 1));
      expect(replayed.slice(0, seenByChild.length)).toEqual(seenByChild);
      expect(replayed.length).toBe(result.metrics.streamEvents);
      expect(replayed.at(-1)?.type).toBe("text");
      expect(acc.duplicated).toEqual([]);
      expect(leaks).toEqual([]);
    } finally {
      await dispatcher.close();
    }
  });
});
