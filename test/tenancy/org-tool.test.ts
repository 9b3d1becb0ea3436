// `station-coding org add|rm|ls|limits` and `station-coding secrets set|ls|rm`, run as a user would
// (the CLI from source), against the shipped tenancy config. Credentials land in 0600 files and are
// printed only when asked for; secret values are never printed.
import { readFile, rm, stat, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { Kvm } from "@nats-io/kv";
import { tempDir } from "@station-coding/testkit";
import type { TenancyEnv } from "./support/tenancy-env.js";
import { ShippedTenancyServer, cli, startTenancy } from "./support/tenancy-env.js";

const cleanups: (() => Promise<unknown>)[] = [];
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

describe("station-coding org", () => {
  it("writes accounts nats-server accepts, credentials in 0600 files, and prints seeds only when asked", async () => {
    const dir = await tempDir("org-tool");
    cleanups.push(() => rm(dir, { recursive: true, force: true }));
    const added = await cli([
      "--json",
      "org",
      "add",
      "acme",
      "--dir",
      dir,
      "--max-storage",
      "512M",
      "--max-connections",
      "20",
    ]);
    expect(added.code, added.stderr).toBe(0);
    const out = JSON.parse(added.stdout) as {
      account: string;
      limits: Record<string, number>;
      users: { role: string; publicKey: string; credsFile: string; seed?: string }[];
      operator: { credsFile: string };
    };
    expect(out.account).toBe("ORG_acme");
    expect(out.limits).toMatchObject({ maxStorage: 512 * 1024 * 1024, maxConnections: 20, maxStreams: 32 });
    expect(out.users.map((u) => u.role)).toEqual(["admin", "dispatcher", "worker", "viewer"]);
    expect(added.stdout).not.toMatch(/"seed"|SU[A-Z2-7]{56}/);
    for (const file of [...out.users.map((u) => u.credsFile), out.operator.credsFile]) {
      expect((await stat(file)).mode & 0o777, file).toBe(0o600);
      expect(await readFile(file, "utf8")).toMatch(/^SU[A-Z2-7]{56}\n$/);
    }
    expect((await stat(join(dir, "creds", "acme"))).mode & 0o777).toBe(0o700);
    // The server config holds public keys only.
    const accounts = await readFile(join(dir, "accounts.conf"), "utf8");
    for (const u of out.users) expect(accounts).toContain(u.publicKey);
    expect(accounts).not.toMatch(/SU[A-Z2-7]{56}/);

    const shown = await cli(["org", "add", "globex", "--dir", dir, "--show-credentials"]);
    expect(shown.stdout).toMatch(/admin .* U[A-Z2-7]{55} {2}SU[A-Z2-7]{56}/);
    expect(shown.stdout).toContain("station-coding --config");

    // nats-server runs the shipped config with them; every generated user logs in.
    const server = await ShippedTenancyServer.start(dir);
    cleanups.push(() => server.stop());
    const status = await cli([
      "--config",
      join(dir, "creds", "acme", "admin.yaml"),
      "--nats-url",
      server.url,
      "init",
    ]);
    expect(status.code, status.stderr).toBe(0);
    expect(status.stdout).toContain("topology ready (org acme)");
    const viewer = await cli([
      "--config",
      join(dir, "creds", "acme", "viewer.yaml"),
      "--nats-url",
      server.url,
      "--json",
      "status",
    ]);
    expect(viewer.code, viewer.stderr).toBe(0);
    expect(JSON.parse(viewer.stdout)).toMatchObject({ org: "acme", tasks: { stream: "CODING_TASKS_acme" } });
    // globex was not initialised: its viewer says so and names the refused subject.
    const notInit = await cli([
      "--config",
      join(dir, "creds", "globex", "viewer.yaml"),
      "--nats-url",
      server.url,
      "status",
    ]);
    expect(notInit.code).toBe(1);
    expect(notInit.stderr).toMatch(
      /ensuring stream CODING_TASKS_globex: permission denied .*STREAM\.CREATE\.CODING_TASKS_globex/,
    );

    // ls, limits, duplicates, bad names, rm.
    const ls = await cli(["org", "ls", "--dir", dir]);
    expect(ls.stdout).toMatch(/^acme +max-storage 512\.0 MiB.*max-connections 20$/m);
    expect(ls.stdout).toMatch(/^globex +max-storage 10\.0 GiB/m);
    const limits = await cli(["org", "limits", "globex", "--dir", dir, "--max-streams", "40", "--reload"]);
    expect(limits.code, limits.stderr).toBe(0);
    expect(limits.stdout).toContain(`nats-server (pid ${server.pid}) reloading`);
    expect(await cli(["org", "add", "acme", "--dir", dir])).toMatchObject({
      code: 2,
      stderr: expect.stringMatching(/org acme already exists/) as unknown,
    });
    expect(await cli(["org", "add", "acme.eu", "--dir", dir])).toMatchObject({
      code: 2,
      stderr: expect.stringMatching(/org "acme\.eu": must not contain "\."/) as unknown,
    });
    expect(await cli(["org", "add", "x", "--dir", dir, "--max-storage", "lots"])).toMatchObject({
      code: 2,
      stderr: expect.stringMatching(/--max-storage "lots": must be a size/) as unknown,
    });
    const removed = await cli(["org", "rm", "globex", "--dir", dir, "--reload"]);
    expect(removed.code, removed.stderr).toBe(0);
    expect(await readFile(join(dir, "accounts.conf"), "utf8")).not.toContain("ORG_globex");
    await expect(stat(join(dir, "creds", "globex"))).rejects.toThrow();
    expect((await cli(["org", "ls", "--dir", dir])).stdout).not.toContain("globex");
  });
});

describe("station-coding secrets", () => {
  let env: TenancyEnv;
  beforeAll(async () => {
    env = await startTenancy({ orgs: ["acme"] });
  });
  afterAll(async () => {
    await env?.close();
  });

  it("sets, lists and removes a git token in the org's secrets bucket without ever printing it", async () => {
    const token = "ghp_NeverPrintThisValue123";
    const as = (role: string) => [
      "--config",
      join(env.store.credsDir("acme"), `${role}.yaml`),
      "--nats-url",
      env.server.url,
    ];
    const set = await cli([...as("admin"), "secrets", "set", "github", "--from-env", "MY_TOKEN"], {
      MY_TOKEN: token,
    });
    expect(set.code, set.stderr).toBe(0);
    expect(set.stdout).toBe("secret github stored in coding-secrets-acme (revision 1)\n");
    // The dispatcher may write (the value from a file) but not read.
    const file = join(env.store.dir, "deploy-token");
    await writeFile(file, `${token}-2\n`, { mode: 0o600 });
    expect((await cli([...as("dispatcher"), "secrets", "set", "deploy", "--from-file", file])).code).toBe(0);
    const worker = await new Kvm(await env.connectAs("acme", "worker")).open("coding-secrets-acme");
    expect((await worker.get("deploy"))?.string()).toBe(`${token}-2`);

    expect((await cli([...as("admin"), "secrets", "ls"])).stdout).toBe("deploy\ngithub\n");
    const asDispatcher = await cli([...as("dispatcher"), "secrets", "ls"]);
    expect(asDispatcher.stdout).toBe("deploy\ngithub\n");
    expect(asDispatcher.stderr).toContain("this user may not read coding-secrets-acme");
    const viewerSet = await cli([...as("viewer"), "secrets", "set", "x", "--from-env", "MY_TOKEN"], {
      MY_TOKEN: token,
    });
    expect(viewerSet.code).toBe(1);
    expect(viewerSet.stderr).toMatch(/permission denied to publish to "\$KV\.coding-secrets-acme\.x"/);

    expect((await cli([...as("admin"), "secrets", "rm", "github"])).stdout).toBe(
      "secret github deleted from coding-secrets-acme\n",
    );
    expect((await cli([...as("admin"), "secrets", "ls"])).stdout).toBe("deploy\n");
    expect(await cli([...as("admin"), "secrets", "set", "x"])).toMatchObject({
      code: 2,
      stderr: expect.stringMatching(/exactly one of --from-env <VAR> or --from-file <file>/) as unknown,
    });
    expect(await cli([...as("admin"), "secrets", "set", "x", "--from-env", "UNSET_VAR_XYZ"])).toMatchObject({
      code: 2,
      stderr: expect.stringMatching(/--from-env UNSET_VAR_XYZ: the variable is not set or empty/) as unknown,
    });
    for (const output of [set, asDispatcher, viewerSet]) {
      expect(`${output.stdout}${output.stderr}`).not.toContain(token);
    }
  });

  it("a missing secret fails the task with an error naming the bucket and the key", async () => {
    await env.worker(["acme"]);
    const dispatcher = await env.dispatcher("acme");
    const handle = await dispatcher.submit({
      taskID: "needs-token",
      prompt: "x",
      workspace: { git: { url: "https://git.example.invalid/acme/api.git", tokenFromKV: "nope" } },
    });
    const result = await handle.result();
    expect(result).toMatchObject({ status: "error", errorCode: "GIT_AUTH_FAILED", retryable: false });
    expect(result.error).toContain('no key "nope" in the secrets bucket coding-secrets-acme of org acme');
    expect(result.error).toContain("secrets set nope");
  });
});
