// The sandbox fails closed: where it cannot start the worker's driver refuses to, unless the
// operator turns it off explicitly, and then the worker says so at start and in every result.
import { chmod, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ErrorCodes } from "@station-coding/protocol";
import { createFileScenario, tempDir } from "@station-coding/testkit";
import { CodingWorker, OpenCodeDriver } from "@station-coding/worker";
import type { Env } from "@station-coding/testkit/worker";
import {
  publishTask,
  startEnv,
  startOpenCode,
  startWorker,
  testOptions,
  waitResult,
} from "@station-coding/testkit/worker";

let env: Env;
beforeAll(async () => {
  env = await startEnv();
});
afterAll(async () => {
  await env?.close();
});

describe("sandbox fails closed", () => {
  it("refuses to start without bubblewrap, naming the way out", async () => {
    const err = await OpenCodeDriver.start({
      sandbox: { bwrap: "/nonexistent/bwrap" },
      workspaceRoot: env.workspaceDir,
    }).catch((e: unknown) => e);
    expect(err).toMatchObject({ code: ErrorCodes.SandboxUnavailable });
    expect((err as Error).message).toContain("bubblewrap (/nonexistent/bwrap) not found");
    expect((err as Error).message).toContain("sandbox: off");
  });

  it("refuses to start where bubblewrap cannot create namespaces (no user namespaces)", async () => {
    const dir = await tempDir("fake-bwrap");
    const fake = join(dir, "bwrap");
    await writeFile(fake, "#!/bin/sh\necho 'bwrap: No permissions to creating new namespace' >&2\nexit 1\n");
    await chmod(fake, 0o755);
    const err = await OpenCodeDriver.start({
      sandbox: { bwrap: fake },
      workspaceRoot: env.workspaceDir,
    }).catch((e: unknown) => e);
    expect(err).toMatchObject({ code: ErrorCodes.SandboxUnavailable });
    expect((err as Error).message).toContain("No permissions to creating new namespace");
    expect((err as Error).message).toContain("user namespaces");
  });

  it("refuses socat-less network access, and an empty allowlist", async () => {
    await expect(
      OpenCodeDriver.start({ sandbox: { socat: "/nonexistent/socat" }, workspaceRoot: env.workspaceDir }),
    ).rejects.toThrow(/socat \(\/nonexistent\/socat\) not found.*sandbox\.network: deny/);
    await expect(
      OpenCodeDriver.start({ sandbox: { network: "allowlist" }, workspaceRoot: env.workspaceDir }),
    ).rejects.toThrow("sandbox.allowedHosts: is empty");
  });
});

describe("sandbox: off", () => {
  let oc: Awaited<ReturnType<typeof startOpenCode>>;
  beforeAll(async () => {
    // Off needs no bubblewrap at all.
    oc = await startOpenCode([createFileScenario({ match: "create hello" })], {
      workspaceRoot: env.workspaceDir,
      sandbox: { mode: "off", bwrap: "/nonexistent/bwrap" },
    });
  }, 60_000);
  afterAll(async () => {
    await oc?.close();
  });

  it("says so at start and in every result", async () => {
    expect(oc.driver.sandbox).toEqual({ mode: "off" });
    await startWorker(env, oc.driver);
    await publishTask(env, { taskID: "off-1", prompt: "please create hello" });
    const result = await waitResult(env, "off-1", 60_000);
    expect(result.status).toBe("completed");
    expect(result.sandbox).toBe("off");
    expect(env.logs.some((line) => line.includes("sandbox: off"))).toBe(true);
  }, 90_000);
});

describe("sandbox workspace root", () => {
  it("a worker refuses a workspace dir outside the root its driver confines tools to", async () => {
    const other = await tempDir("elsewhere");
    const driver = {
      sandbox: { mode: "on" as const, workspaceRoot: other },
      openSession: async () => ({ opencodeID: "x", reused: false }),
      prompt: async () => ({ text: "", toolCalls: 0 }),
    };
    await expect(CodingWorker.start({ ...testOptions(env), driver })).rejects.toThrow(
      /workspaceDir .*: outside the sandbox's workspace root/,
    );
  });
});
