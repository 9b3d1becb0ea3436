// The README's "HTTP API" section, run as written: its station.yaml block is the gateway's config,
// `station-coding serve` (from source) runs with it against a test nats-server and a worker
// (scripted driver), and every `curl` line of the section's second ```sh block runs through `sh`
// as written. Only the first line of that block, `export STATION_GATEWAY=...`, is replaced: the
// test's gateway listens on a free loopback port, so STATION_GATEWAY points there; the token is
// the one the README's own `export STATION_GATEWAY_TOKEN=...` line sets.
import { spawn } from "node:child_process";
import { writeFile } from "node:fs/promises";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { TaskResult } from "@station-coding/protocol";
import { tempDir, waitFor } from "@station-coding/testkit";
import type { Env } from "@station-coding/testkit/worker";
import { ScriptedDriver, startEnv, startWorker } from "@station-coding/testkit/worker";
import { Child, REPO_ROOT, cleanEnv, repoFile, runShell } from "./support/deploy.js";

const CLI_MAIN = fileURLToPath(new URL("../../packages/cli/src/main.ts", import.meta.url));
const TSCONFIG = fileURLToPath(new URL("./tsconfig.json", import.meta.url));

/** The README's HTTP API section. */
function section(): string {
  const readme = repoFile("README.md");
  const start = readme.indexOf("\n## HTTP API\n");
  if (start < 0) throw new Error("README.md has no ## HTTP API section");
  const end = readme.indexOf("\n## ", start + 5);
  return readme.slice(start, end < 0 ? undefined : end);
}

function blocks(text: string, lang: string): string[] {
  return [...text.matchAll(new RegExp("```" + lang + "\\n([\\s\\S]*?)```", "g"))].map((m) => m[1]!);
}

let env: Env;
let serve: Child | undefined;
let gatewayURL: string;
let token: string;
beforeAll(async () => {
  env = await startEnv();
  await startWorker(env, new ScriptedDriver());
  const text = section();
  const yaml = blocks(text, "yaml")[0];
  if (!yaml?.includes("gateway:"))
    throw new Error("the HTTP API section's first yaml block is not a gateway config");
  const tokenLine = /^export STATION_GATEWAY_TOKEN=(\S+)$/m.exec(blocks(text, "sh")[0] ?? "");
  if (!tokenLine)
    throw new Error("the HTTP API section's first sh block does not export STATION_GATEWAY_TOKEN");
  token = tokenLine[1]!;
  const dir = await tempDir("readme-http");
  const config = join(dir, "station.yaml");
  await writeFile(config, yaml);
  serve = new Child(
    spawn(
      process.execPath,
      [
        "--import",
        "tsx",
        CLI_MAIN,
        "serve",
        "--config",
        config,
        "--nats-url",
        env.server.url,
        "--listen",
        "127.0.0.1:0",
      ],
      {
        cwd: REPO_ROOT,
        env: cleanEnv({ TSX_TSCONFIG_PATH: TSCONFIG, STATION_GATEWAY_TOKEN: token }),
        stdio: ["ignore", "pipe", "pipe"],
      },
    ),
  );
  gatewayURL = await waitFor(
    () => {
      if (serve!.process.exitCode !== null)
        throw new Error(`serve exited ${serve!.process.exitCode}:\n${serve!.stderr}`);
      return /listening on (http:\/\/\S+)/.exec(serve!.stdout)?.[1];
    },
    { timeout: 30_000, message: "station-coding serve to listen" },
  );
}, 60_000);

afterAll(async () => {
  if (serve) {
    serve.process.kill("SIGTERM");
    const exit = await serve.wait(15_000).catch(() => undefined);
    expect(exit?.code, serve.stderr).toBe(0);
  }
  await env?.close();
});

describe("README: the HTTP API section, run as written", () => {
  it("submits, streams, long-polls, lists, reads artifacts, cancels and fetches the document with curl", async () => {
    const lines = (blocks(section(), "sh")[1] ?? "").split("\n").filter((l) => l.trim() !== "");
    expect(lines[0]).toMatch(/^export STATION_GATEWAY=/);
    const curls = lines.slice(1);
    expect(curls.length).toBeGreaterThanOrEqual(7);
    expect(curls.every((l) => l.startsWith("curl "))).toBe(true);
    const shellEnv = cleanEnv({ STATION_GATEWAY: gatewayURL, STATION_GATEWAY_TOKEN: token });
    const out: string[] = [];
    for (const line of curls) {
      const exit = await runShell(line, shellEnv, 60_000);
      expect(exit.code, `${line}\n${exit.stderr}`).toBe(0);
      out.push(exit.stdout);
    }
    const [submit, events, result, list, artifacts, cancel, openapi] = out as [
      string,
      string,
      string,
      string,
      string,
      string,
      string,
    ];
    expect(JSON.parse(submit)).toMatchObject({ taskID: "readme-http-1", status: "queued" });
    expect(events).toMatch(/^event: task_started\ndata: \{.*\}\nid: 1$/m);
    expect(events).toMatch(/^event: result\ndata: \{.*"status":"completed"/m);
    const parsed = JSON.parse(result) as TaskResult;
    expect(parsed).toMatchObject({
      taskID: "readme-http-1",
      status: "completed",
      result: "echo: add a README",
    });
    expect((JSON.parse(list) as { items: { taskID: string }[] }).items.map((t) => t.taskID)).toContain(
      "readme-http-1",
    );
    expect(JSON.parse(artifacts)).toMatchObject({ items: expect.any(Array), next: null });
    expect(JSON.parse(cancel)).toEqual({ taskID: "readme-http-1", status: "cancelling" });
    expect(JSON.parse(openapi)).toMatchObject({ openapi: "3.1.0" });
    // The token never reaches the gateway's log.
    expect(serve!.stderr + serve!.stdout).not.toContain(token);
  });
});
