// The worker's own git never runs a program that a workspace's config or attributes name: the
// agent writes .git/config, .gitattributes and hooks inside its workspace, then the worker collects
// changes, commits, pushes and pulls in it with a token in hand. Each planted command would create a
// file outside the workspace; none may appear, and every operation still works.
import { existsSync } from "node:fs";
import { chmod, mkdir, readFile, readdir, rm, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { GitServer, git, tempDir } from "@station-coding/testkit";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { WorkspaceManager, commandOverrides } from "@station-coding/worker/internal";
import { makeTask } from "./support/workspace-fixtures.js";

const TOKEN = "hardening-token-0123456789";
let server: GitServer;
let base: string;
let outside: string;

beforeAll(async () => {
  server = await GitServer.start({ token: TOKEN });
  base = await tempDir("ws-hardening");
  outside = await tempDir("hardening-outside");
});
afterAll(async () => {
  await server.stop();
  await rm(base, { recursive: true, force: true });
  await rm(outside, { recursive: true, force: true });
});

/** A shell command that leaves a named mark outside the workspace if anything runs it. */
function mark(name: string): string {
  return `touch ${join(outside, name)}; cat`;
}

/** Config keys git documents as running a command, each set to leave a mark. */
function plantedConfig(): [string, string][] {
  return [
    ["filter.evil.clean", mark("filter-clean")],
    ["filter.evil.smudge", mark("filter-smudge")],
    ["filter.evil.process", mark("filter-process")],
    ["filter.evil.required", "true"],
    ["diff.evil.textconv", mark("diff-textconv")],
    ["diff.evil.command", mark("diff-command")],
    ["merge.evil.driver", mark("merge-driver")],
    ["diff.external", mark("diff-external")],
    ["core.pager", mark("core-pager")],
    ["pager.status", mark("pager-status")],
    ["pager.diff", mark("pager-diff")],
    ["pager.log", mark("pager-log")],
    ["core.editor", mark("core-editor")],
    ["sequence.editor", mark("sequence-editor")],
    ["core.hooksPath", ".githooks"],
    ["core.fsmonitor", join(outside, "..", "fsmonitor.sh")],
    ["core.alternateRefsCommand", mark("alternate-refs")],
    ["gpg.program", join(outside, "..", "gpg.sh")],
    ["gpg.ssh.program", join(outside, "..", "gpg.sh")],
    ["commit.gpgSign", "true"],
    ["tag.gpgSign", "true"],
    ["log.showSignature", "true"],
  ];
}

/** Keys that run commands or redirect credentials in network calls: such a workspace is refused a token. */
function plantedNetworkConfig(): [string, string][] {
  return [
    ["core.askPass", mark("core-askpass")],
    ["core.sshCommand", mark("ssh-command")],
    ["core.gitProxy", mark("git-proxy")],
    ["credential.helper", `!${mark("credential-helper")}`],
    [`credential.${server.url("")}.helper`, `!${mark("credential-url-helper")}`],
    ["remote.origin.uploadpack", mark("upload-pack")],
    ["remote.origin.receivepack", mark("receive-pack")],
  ];
}

async function plant(ws: string): Promise<void> {
  for (const [key, value] of plantedConfig()) await git(ws, "config", key, value);
  await writeFile(join(ws, ".gitattributes"), "* filter=evil diff=evil merge=evil\n*.inc filter=inc\n");
  const hook = `#!/bin/sh\ntouch ${join(outside, "hook")}-$(basename "$0")\n`;
  for (const dir of [join(ws, ".git", "hooks"), join(ws, ".githooks")]) {
    await mkdir(dir, { recursive: true });
    for (const name of [
      "pre-commit",
      "post-commit",
      "commit-msg",
      "pre-push",
      "reference-transaction",
      "post-index-change",
      "post-checkout",
      "post-merge",
      "fsmonitor-watchman",
    ]) {
      await writeFile(join(dir, name), hook);
      await chmod(join(dir, name), 0o755);
    }
  }
  for (const script of ["fsmonitor.sh", "gpg.sh"]) {
    await writeFile(join(outside, "..", script), `#!/bin/sh\ntouch ${join(outside, script)}\n`);
    await chmod(join(outside, "..", script), 0o755);
  }
}

describe("the worker's git runs nothing a workspace configures", () => {
  it("overrides every command-running key a repository's config names", () => {
    const keys = [...plantedConfig(), ...plantedNetworkConfig()].map(([k]) => k);
    const args = commandOverrides([...keys, "filter.inc.clean", "user.name", "bogus\nkey.x.clean"]);
    const set = new Map<string, string>();
    for (let i = 1; i < args.length; i += 2) {
      const [key, ...value] = args[i]!.split("=");
      set.set(key!, value.join("="));
    }
    expect(set.get("filter.evil.clean")).toBe("");
    expect(set.get("filter.evil.process")).toBe("");
    expect(set.get("filter.evil.required")).toBe("false");
    expect(set.get("filter.inc.clean")).toBe("");
    expect(set.get("diff.evil.textconv")).toBe("");
    expect(set.get("merge.evil.driver")).toBe("");
    expect(set.get("remote.origin.uploadpack")).toBe("git-upload-pack");
    expect(set.get("pager.log")).toBe("false");
    expect(set.has("user.name")).toBe(false);
    expect([...set.keys()].some((k) => k.includes("\n"))).toBe(false);
  });

  it("collects changes, commits, pushes and pulls in a planted workspace without running any of it", async () => {
    await server.createRepo("planted", { "a.txt": "a\n" });
    const m = new WorkspaceManager({ baseDir: base, git: { allowHttp: true } });
    try {
      const spec = { url: server.url("planted"), token: TOKEN };
      const task = makeTask({ git: spec });
      const ws = await m.prepare(task, undefined, () => undefined);
      await plant(ws.path);
      await writeFile(join(ws.path, "b.txt"), "b\n");
      await writeFile(join(ws.path, "c.inc"), "c\n");
      await writeFile(join(ws.path, "e.inc"), "e\n");

      const changes = await m.collectChanges(ws);
      const paths = changes.files.map((f) => f.path).filter((p) => !p.startsWith(".githooks/"));
      expect(paths.sort()).toEqual([".gitattributes", "b.txt", "c.inc", "e.inc"]);
      expect(Buffer.from(changes.patch ?? []).toString()).toContain("+b");

      const commit = await m.commit(ws, { message: "agent change" });
      expect(commit.hash).toMatch(/^[0-9a-f]{40}$/);
      const pushed = await m.push(ws, { git: spec });
      expect(pushed.commit).toBe(commit.hash);
      expect(await server.head("planted")).toBe(commit.hash);

      await server.commitUpstream("planted", { "up.txt": "up\n" }, "upstream");
      const again = await m.prepare({ ...task, taskID: `${task.taskID}-2` }, undefined, () => undefined);
      expect(existsSync(join(again.path, "up.txt"))).toBe(true);
      await m.collectChanges(again);

      expect(await readdir(outside)).toEqual([]);

      // Keys that would run commands in network calls: local work goes on, a token is refused.
      for (const [key, value] of plantedNetworkConfig()) await git(again.path, "config", key, value);
      // An included file plants another filter driver: includes are read, and overridden too.
      await writeFile(
        join(again.path, ".git", "extra.config"),
        `[filter "inc"]\n\tclean = ${mark("include-clean")}\n`,
      );
      await git(again.path, "config", "include.path", "extra.config");
      await writeFile(join(again.path, "d.txt"), "d\n");
      await writeFile(join(again.path, "e.inc"), "changed\n");
      expect((await m.collectChanges(again)).files.some((f) => f.path === "d.txt")).toBe(true);
      await m.commit(again, { message: "second change" });
      await expect(m.push(again, { git: spec })).rejects.toMatchObject({ code: "GIT_REFUSED" });
      expect(await readdir(outside)).toEqual([]);
    } finally {
      await m.close();
    }
  }, 60_000);

  it("keeps git on the workspace when its config names another work tree (core.worktree)", async () => {
    const m = new WorkspaceManager({ baseDir: base });
    try {
      const other = await tempDir("other-tree");
      await writeFile(join(other, "tenant-secret.txt"), "tenant secret\n");
      const ws = await m.prepare(makeTask(), undefined, () => undefined);
      await git(ws.path, "config", "core.worktree", other);
      await writeFile(join(ws.path, "mine.txt"), "mine\n");
      const changes = await m.collectChanges(ws);
      expect(changes.files.map((f) => f.path)).toEqual(["mine.txt"]);
      expect(Buffer.from(changes.patch ?? []).toString()).not.toContain("tenant secret");
      await rm(other, { recursive: true, force: true });
    } finally {
      await m.close();
    }
  });

  it("overrides a command-running key whatever case its section is written in", async () => {
    const m = new WorkspaceManager({ baseDir: base });
    try {
      const ws = await m.prepare(makeTask(), undefined, () => undefined);
      const config = join(ws.path, ".git", "config");
      await writeFile(
        config,
        `${await readFile(config, "utf8")}[FILTER "evil"]\n\tclean = ${mark("upper-filter")}\n`,
      );
      await writeFile(join(ws.path, ".gitattributes"), "* filter=evil\n");
      await writeFile(join(ws.path, "a.txt"), "a\n");
      const changes = await m.collectChanges(ws);
      expect(changes.files.map((f) => f.path).sort()).toEqual([".gitattributes", "a.txt"]);
      expect(await readdir(outside)).toEqual([]);
    } finally {
      await m.close();
    }
  });

  it("ignores a .git file that points at another repository", async () => {
    const m = new WorkspaceManager({ baseDir: base });
    try {
      const other = await tempDir("other-repo");
      await git(other, "init", "--quiet", "--initial-branch=main");
      await writeFile(join(other, "secret.txt"), "tenant secret\n");
      const ws = await m.prepare(makeTask(), undefined, () => undefined);
      await rm(join(ws.path, ".git"), { recursive: true, force: true });
      await writeFile(join(ws.path, ".git"), `gitdir: ${join(other, ".git")}\n`);
      await writeFile(join(ws.path, "secret.txt"), "tenant secret\n");
      const changes = await m.collectChanges(ws);
      expect(changes).toEqual({ files: [], commits: [] });
      await rm(other, { recursive: true, force: true });
    } finally {
      await m.close();
    }
  });
});
