import { execFile, spawn } from "node:child_process";
import type { ChildProcess } from "node:child_process";
import { readFile, readdir, rm, stat, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";
import { afterEach, describe, expect, it } from "vitest";
import { AuthorizationError, connect } from "@nats-io/transport-node";
import { tempDir, waitFor } from "@station-coding/testkit";
import { ADD_ORG_SCRIPT, TENANCY_SERVER_CONF, addOrg } from "./support/tenancy-env.js";

const run = promisify(execFile);
const CLI_MAIN = fileURLToPath(new URL("../../packages/cli/src/main.ts", import.meta.url));
const TSCONFIG = fileURLToPath(new URL("../tsconfig.json", import.meta.url));

const cleanups: (() => Promise<unknown>)[] = [];
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

async function workDir(): Promise<string> {
  const dir = await tempDir("add-org");
  cleanups.push(() => rm(dir, { recursive: true, force: true }));
  return dir;
}

/** Runs add-org.mjs expecting it to fail; returns its exit code and stderr. */
async function addOrgFails(args: string[]): Promise<{ code: number; stderr: string }> {
  const err = await run(process.execPath, [ADD_ORG_SCRIPT, ...args]).then(
    () => undefined,
    (e: unknown) => e as { code: number; stderr: string },
  );
  if (!err) throw new Error(`add-org.mjs ${args.join(" ")} succeeded`);
  return { code: err.code, stderr: err.stderr };
}

/**
 * Starts nats-server with the shipped tenancy config copied next to the generated auth.conf (which
 * it includes), with only the deployment values changed: a free port, no fixed monitoring port, a
 * temp store. Resolves with the client URL once the server listens.
 */
async function startShippedConfig(dir: string): Promise<string> {
  const shipped = await readFile(TENANCY_SERVER_CONF, "utf8");
  const config = shipped
    .replace(/^listen: .*$/m, "listen: 127.0.0.1:-1")
    .replace(/^http: .*$/m, "http: 127.0.0.1:-1")
    .replace(/^ {2}store_dir: .*$/m, `  store_dir: ${JSON.stringify(join(dir, "jetstream"))}`);
  expect(config).toContain("include ./auth.conf");
  const file = join(dir, "nats-server.conf");
  await writeFile(file, `${config}\nports_file_dir: ${JSON.stringify(dir)}\n`);

  const checked = await run("nats-server", ["-t", "-c", file]);
  expect(`${checked.stdout}${checked.stderr}`).toMatch(/configuration file .* is valid/);

  let log = "";
  const child: ChildProcess = spawn("nats-server", ["-c", file], { stdio: ["ignore", "pipe", "pipe"] });
  child.stdout?.on("data", (chunk: Buffer) => (log += chunk.toString()));
  child.stderr?.on("data", (chunk: Buffer) => (log += chunk.toString()));
  cleanups.push(async () => {
    if (child.exitCode !== null) return;
    const exited = new Promise((resolve) => child.once("exit", resolve));
    child.kill("SIGTERM");
    await exited;
  });
  const ports = await waitFor(
    async () => {
      if (child.exitCode !== null) throw new Error(`nats-server exited ${child.exitCode}:\n${log}`);
      const name = (await readdir(dir)).find((f) => f.endsWith(".ports"));
      return name && (JSON.parse(await readFile(join(dir, name), "utf8")) as { nats: string[] });
    },
    { timeout: 10_000, message: "nats-server to write its ports file" },
  );
  const url = ports.nats[0];
  if (url === undefined) throw new Error(`no client URL in the ports file:\n${log}`);
  return url;
}

/** Runs the station-coding CLI from source. */
async function cli(args: string[], password: string): Promise<{ stdout: string; stderr: string }> {
  return run(process.execPath, ["--import", "tsx", CLI_MAIN, ...args], {
    env: { ...process.env, NATS_PASSWORD: password, TSX_TSCONFIG_PATH: TSCONFIG },
    timeout: 30_000,
  });
}

describe("deploy/scripts/add-org.mjs", () => {
  it("writes users that nats-server accepts through the shipped tenancy config, and prints working commands", async () => {
    const dir = await workDir();
    const file = join(dir, "auth.conf");
    const acme = await addOrg(["acme", "--file", file]);
    const globex = await addOrg(["globex", "--file", file]);
    const shared = await addOrg(["--shared-worker", "workers-pool", "--orgs", "acme,globex", "--file", file]);
    expect(acme.users.map((u) => [u.role, u.user])).toEqual([
      ["admin", "station-admin"],
      ["dispatcher", "acme-dispatcher"],
      ["worker", "acme-worker"],
    ]);
    expect(globex.users.map((u) => u.user)).toEqual(["globex-dispatcher", "globex-worker"]);
    expect(shared.users.map((u) => u.user)).toEqual(["workers-pool"]);
    expect(shared.commands.worker).toMatch(/worker --org acme,globex --per-org-concurrency <n>$/);
    expect((await stat(file)).mode & 0o777).toBe(0o600);

    const url = await startShippedConfig(dir);
    const users = [...acme.users, ...globex.users, ...shared.users];
    for (const { user, password } of users) {
      const nc = await connect({ servers: url, user, pass: password });
      await nc.close();
    }
    await expect(connect({ servers: url, user: "acme-dispatcher", pass: "wrong" })).rejects.toBeInstanceOf(
      AuthorizationError,
    );

    // The printed next steps, run as printed (the CLI from source): the admin initialises the org,
    // then the org's dispatcher user reads its status, with no right beyond its own.
    const admin = acme.users.find((u) => u.role === "admin");
    const dispatcher = acme.users.find((u) => u.role === "dispatcher");
    expect(acme.commands.init).toBe(
      "NATS_PASSWORD=<station-admin password> station-coding --nats-url nats://127.0.0.1:4222 --user station-admin init --org acme",
    );
    const init = await cli(
      ["--nats-url", url, "--user", "station-admin", "init", "--org", "acme"],
      admin?.password ?? "",
    );
    expect(init.stdout).toContain("topology ready (org acme)");
    const globexDispatcher = globex.users.find((u) => u.role === "dispatcher");
    const [status, refused] = await Promise.all([
      cli(
        ["--nats-url", url, "--user", "acme-dispatcher", "--json", "status", "--org", "acme"],
        dispatcher?.password ?? "",
      ),
      // globex was not initialised: its dispatcher cannot create the topology, and says so.
      cli(
        ["--nats-url", url, "--user", "globex-dispatcher", "status", "--org", "globex"],
        globexDispatcher?.password ?? "",
      ).then(
        () => undefined,
        (e: unknown) => e as { stderr: string },
      ),
    ]);
    expect(JSON.parse(status.stdout)).toMatchObject({ org: "acme", tasks: { stream: "CODING_TASKS_acme" } });
    expect(refused?.stderr).toMatch(
      /ensuring stream CODING_TASKS_globex: permission denied .*\$JS\.API\.STREAM\.CREATE\.CODING_TASKS_globex/,
    );
  });

  it("keeps other orgs' users, refuses duplicates without --force, and takes passwords from the environment", async () => {
    const dir = await workDir();
    const file = join(dir, "auth.conf");
    const first = await addOrg(["acme", "--file", file], {
      STATION_ADMIN_PASSWORD: "admin-pw",
      STATION_DISPATCHER_PASSWORD: "acme-d-pw",
      STATION_WORKER_PASSWORD: "acme-w-pw",
    });
    expect(first.users.map((u) => u.password)).toEqual(["admin-pw", "acme-d-pw", "acme-w-pw"]);
    const block = (text: string, name: string): string =>
      text.slice(text.indexOf(`# BEGIN org ${name}`), text.indexOf(`# END org ${name}`));
    const before = await readFile(file, "utf8");
    expect(before).toContain('password: "acme-d-pw"');

    await addOrg(["globex", "--file", file]);
    const after = await readFile(file, "utf8");
    expect(block(after, "acme")).toBe(block(before, "acme"));
    expect(after.match(/# BEGIN admin /g)).toHaveLength(1);

    const again = await addOrgFails(["acme", "--file", file]);
    expect(again).toMatchObject({ code: 2 });
    expect(again.stderr).toMatch(/org acme is already in .*--force/);
    expect(await readFile(file, "utf8")).toBe(after);

    const forced = await addOrg(["acme", "--file", file, "--force"]);
    const rotated = await readFile(file, "utf8");
    expect(rotated.match(/# BEGIN org acme/g)).toHaveLength(1);
    expect(rotated).not.toContain("acme-d-pw");
    expect(rotated).toContain(`password: "${forced.users[0]?.password}"`);
    expect(block(rotated, "globex")).toBe(block(after, "globex"));

    expect(
      await addOrgFails(["--shared-worker", "pool", "--orgs", "acme,initech", "--file", file]),
    ).toMatchObject({
      code: 2,
      stderr: expect.stringMatching(/org initech is not in .*add it first/) as unknown,
    });
    expect(await addOrgFails(["acme.eu", "--file", file])).toMatchObject({
      code: 2,
      stderr: expect.stringMatching(/org "acme\.eu": must contain only letters/) as unknown,
    });
    expect(
      await addOrgFails(["--shared-worker", "acme-worker", "--orgs", "acme", "--file", file]),
    ).toMatchObject({
      code: 2,
      stderr: expect.stringMatching(/user acme-worker is already in/) as unknown,
    });
  });
});
