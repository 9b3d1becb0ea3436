// Bad input to the built CLI: one clear line on stderr and a non-zero exit, never a stack trace or
// a hang. Most of these fail before any connection, so no server is started.
import { rm, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { tempDir } from "@station-coding/testkit";
import { Cli, linesOf } from "./support/cli.js";

/** Nothing listens on port 1 (a privileged port), so a connect is refused at once. */
const UNREACHABLE = "nats://127.0.0.1:1";

let cli: Cli;
let dir: string;

beforeAll(async () => {
  cli = new Cli(UNREACHABLE);
  dir = await tempDir("cli-usage");
});
afterEach(async () => {
  await cli.killAll();
});
afterAll(async () => {
  if (dir) await rm(dir, { recursive: true, force: true });
});

/** Runs the CLI and expects exit `code` with exactly one line on stderr, which it returns. */
async function failsWith(args: string[], code: number, env?: Record<string, string>): Promise<string> {
  const run = await cli.run(args, env ? { env } : {});
  expect(run.code, `${args.join(" ")}:\n${run.stdout}${run.stderr}`).toBe(code);
  const lines = linesOf(run.stderr);
  expect(lines, run.stderr).toHaveLength(1);
  expect(run.stderr).not.toMatch(/\n\s+at /);
  return lines[0]!;
}

describe("help", () => {
  const commands = [
    [],
    ["submit"],
    ["watch"],
    ["result"],
    ["cancel"],
    ["status"],
    ["sessions"],
    ["sessions", "ls"],
    ["sessions", "show"],
    ["sessions", "rm"],
    ["context"],
    ["context", "get"],
    ["context", "set"],
    ["context", "rm"],
    ["artifacts"],
    ["artifacts", "ls"],
    ["artifacts", "get"],
    ["artifacts", "rm"],
    ["dlq"],
    ["dlq", "ls"],
    ["dlq", "replay"],
    ["init"],
    ["worker"],
    ["org"],
    ["org", "add"],
    ["org", "rm"],
    ["org", "ls"],
    ["org", "limits"],
    ["secrets"],
    ["secrets", "set"],
    ["secrets", "ls"],
    ["secrets", "rm"],
  ];

  it("prints --help for every command and exits 0", async () => {
    const runs = await Promise.all(commands.map((args) => cli.run([...args, "--help"])));
    runs.forEach((run, i) => {
      const name = ["station-coding", ...commands[i]!].join(" ");
      expect(run.code, name).toBe(0);
      expect(run.stdout, name).toContain(`Usage: ${name}`);
    });
    expect(runs[1]!.stdout).toContain("Exit codes: 0 completed, 1 error, 2 usage, 3 timed out, 4 cancelled");
  });
});

describe("usage errors exit 2 with one line", () => {
  it("names an unknown flag", async () => {
    expect(await failsWith(["submit", "hi", "--bogus"], 2)).toBe(
      "error: unknown option '--bogus' (see --help)",
    );
  });

  it("names an unknown command", async () => {
    expect(await failsWith(["sumbit", "hi"], 2)).toContain("unknown command 'sumbit'");
  });

  it("names a missing argument", async () => {
    expect(await failsWith(["watch"], 2)).toContain("missing required argument 'taskID'");
  });

  it("names a flag with a bad duration", async () => {
    expect(await failsWith(["submit", "hi", "--timeout", "soon"], 2)).toBe(
      'error: --timeout "soon": must be a duration such as "30s", "10m", "2h" or milliseconds',
    );
    expect(await failsWith(["watch", "t1", "--wait-timeout", "5 minutes"], 2)).toContain("--wait-timeout");
  });

  it("names a missing --input file", async () => {
    const missing = join(dir, "missing.txt");
    expect(await failsWith(["submit", "hi", "--input", missing], 2)).toBe(
      `error: --input ${missing}: no such file`,
    );
  });

  it("names an invalid taskID", async () => {
    expect(await failsWith(["watch", "a.b"], 2)).toBe('error: taskID "a.b": must not contain "."');
    expect(await failsWith(["submit", "hi", "--task-id", "x y"], 2)).toContain('--task-id "x y"');
  });

  it("names conflicting or missing git credentials of dlq replay", async () => {
    expect(await failsWith(["dlq", "replay", "t1", "--token-from-kv", "k", "--git-token-env", "T"], 2)).toBe(
      "error: give --token-from-kv or --git-token-env, not both",
    );
    expect(await failsWith(["dlq", "replay", "t1", "--git-token-env", "STATION_TEST_UNSET_TOKEN"], 2)).toBe(
      "error: --git-token-env STATION_TEST_UNSET_TOKEN: that environment variable is not set",
    );
    expect(await failsWith(["dlq", "replay", "t1", "--token-from-kv", "a/b"], 2)).toContain(
      "--token-from-kv",
    );
  });

  it("names a bad --org-creds entry, git policy variable or credentials file", async () => {
    expect(await failsWith(["worker", "--org", "acme", "--org-creds", "acme"], 2)).toBe(
      'error: --org-creds "acme": must be <org>=<credentials file>',
    );
    expect(await failsWith(["worker"], 2, { STATION_GIT_ALLOW_HTTP: "maybe" })).toBe(
      'error: STATION_GIT_ALLOW_HTTP="maybe": must be true or false',
    );
    const junk = join(dir, "junk.creds");
    await writeFile(junk, "user=me\npassword=secret\n");
    expect(await failsWith(["--creds", junk, "status"], 2)).toBe(
      `error: --creds ${junk}: neither a NATS credentials file (JWT and seed) nor a user nkey seed (SU…)`,
    );
  });

  it("names a bad --sandbox or --sandbox-network value", async () => {
    expect(await failsWith(["worker", "--sandbox", "maybe"], 2)).toContain(
      "option '--sandbox <mode>' argument 'maybe' is invalid. Allowed choices are on, off.",
    );
    expect(await failsWith(["worker", "--sandbox-network", "open"], 2)).toContain(
      "Allowed choices are allow, deny, allowlist.",
    );
  });

  it("names a bad --offline-model URL", async () => {
    expect(await failsWith(["worker", "--offline-model", "ftp://model:8080"], 2)).toBe(
      'error: --offline-model "ftp://model:8080": must be an http(s) URL',
    );
    expect(
      await failsWith(["worker"], 2, { STATION_OFFLINE_MODEL_URL: "model:8080", ANTHROPIC_API_KEY: "" }),
    ).toContain('--offline-model "model:8080": must be an http(s) URL');
  });

  it("names an unknown key of --config station.yaml", async () => {
    const config = join(dir, "station.yaml");
    await writeFile(config, "coding:\n  nats:\n    url: nats://127.0.0.1:4222\n    bogus_key: 1\n");
    const line = await failsWith(["--config", config, "status"], 2);
    expect(line).toContain(config);
    expect(line).toContain("bogus_key");
  });
});

describe("connection errors", () => {
  it("exits 1 quickly with one line naming the URL of an unreachable server", async () => {
    const run = await cli.run(["status"], { timeout: 10_000 });
    expect(run.code).toBe(1);
    expect(linesOf(run.stderr)).toEqual([
      expect.stringContaining(`cannot connect to NATS at ${UNREACHABLE}`),
    ]);
    expect(run.elapsed).toBeLessThan(5_000);
    const submit = await cli.run(["--nats-url", UNREACHABLE, "submit", "hi"], { env: { NATS_URL: "" } });
    expect(submit.code).toBe(1);
    expect(submit.stderr).toContain(UNREACHABLE);
  });
});
