// The sandboxes' private /tmp must not hide what the layout binds from under /tmp: a checkout
// there (as a CI clone may be) keeps the OpenCode binary and the plugin under /tmp.
import { execFile } from "node:child_process";
import { mkdir, mkdtemp, realpath, rm, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { promisify } from "node:util";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  resolveSandbox,
  serverSandboxArgs,
  systemLayout,
  toolSandboxArgs,
} from "@station-coding/worker/internal";

const run = promisify(execFile);
let dir: string;
let bwrap: string;
beforeAll(async () => {
  // Under /tmp itself, whatever TMPDIR says: that is the case the private /tmp could hide.
  dir = await realpath(await mkdtemp("/tmp/sandbox-args-"));
  await mkdir(join(dir, "plugin"));
  await writeFile(join(dir, "plugin", "index.js"), "plugin code");
  await writeFile(join(dir, "private.txt"), "not bound");
  bwrap = (await resolveSandbox({ network: "deny" })).bwrap;
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

async function inside(args: string[], script: string): Promise<string> {
  const { stdout } = await run(bwrap, [...args, "--", "/bin/sh", "-c", script]);
  return stdout;
}

describe("sandbox arguments", () => {
  it.each([
    ["the server's", (extra: string[]) => systemLayout(extra).then((l) => serverSandboxArgs(l, []))],
    ["a tool's", (extra: string[]) => systemLayout(extra).then((l) => toolSandboxArgs(l))],
  ])(
    "%s sandbox shows an extra bind under /tmp over its private /tmp, and nothing else of /tmp",
    async (_, args) => {
      const plugin = join(dir, "plugin");
      const out = await inside(
        await args([plugin]),
        `cat ${plugin}/index.js; echo; test -e ${dir}/private.txt && echo leaked || echo hidden`,
      );
      const [code, privateFile] = out.split("\n");
      expect(code).toBe("plugin code");
      expect(privateFile).toBe("hidden");
    },
  );
});
