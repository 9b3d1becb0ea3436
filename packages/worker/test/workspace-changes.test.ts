import { randomBytes } from "node:crypto";
import { existsSync } from "node:fs";
import { mkdir, mkdtemp, readFile, readdir, rename, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join, relative } from "node:path";
import { ErrorCodes, StationError } from "@station-coding/protocol";
import { commitFiles, git, tempDir } from "@station-coding/testkit";
import { x as extract } from "tar";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { Git, RepoState, WorkspaceManager, collectChanges } from "@station-coding/worker/internal";
import { eventSink, makeTask } from "./support/workspace-fixtures.js";

let base: string;
let scratch: string;
let upstream: string;
let m: WorkspaceManager;
const BINARY = Buffer.concat([Buffer.from([0, 1, 2, 255, 0, 0, 137, 80, 78, 71]), randomBytes(2048)]);

beforeEach(async () => {
  base = await tempDir("ws-changes");
  scratch = await tempDir("scratch");
  upstream = join(scratch, "upstream.git");
  await mkdir(upstream);
  await git(upstream, "init", "--quiet", "--bare", "--initial-branch=main");
  const seed = join(scratch, "seed");
  await mkdir(seed);
  await git(seed, "init", "--quiet", "--initial-branch=main");
  await commitFiles(
    seed,
    {
      "keep.txt": "unchanged\n",
      "modify.txt": "line 1\nline 2\n",
      "delete.txt": "going away\n",
      "rename-me.txt": "same content across the rename\n".repeat(5),
      "image.bin": BINARY,
      "staged.txt": "before\n",
    },
    "seed",
  );
  await git(seed, "push", "--quiet", upstream, "main");
  m = new WorkspaceManager({ baseDir: base, git: { allowLocalRepos: true } });
});

afterEach(async () => {
  await m.close();
  await rm(base, { recursive: true, force: true });
  await rm(scratch, { recursive: true, force: true });
});

/** Every file under `dir` except `.git`, with its content. */
async function tree(dir: string): Promise<Record<string, string>> {
  const out: Record<string, string> = {};
  const walk = async (d: string): Promise<void> => {
    for (const entry of await readdir(d, { withFileTypes: true })) {
      if (entry.name === ".git") continue;
      const p = join(d, entry.name);
      if (entry.isDirectory()) await walk(p);
      else out[relative(dir, p)] = (await readFile(p)).toString("base64");
    }
  };
  await walk(dir);
  return out;
}

describe("collecting changes", () => {
  it("produces a patch that reproduces the workspace on a fresh clone at the starting commit", async () => {
    const ws = await m.prepare(makeTask({ git: { url: upstream } }), undefined, () => undefined);
    const start = ws.startCommit!;
    // The agent's work: a commit, then uncommitted edits, a staged edit, and untracked files.
    await writeFile(join(ws.path, "committed.txt"), "committed by the agent\n");
    await git(ws.path, "add", "committed.txt");
    await git(ws.path, "commit", "--quiet", "-m", "agent commit");
    await writeFile(join(ws.path, "modify.txt"), "line 1\nline two\nline 3\n");
    await rm(join(ws.path, "delete.txt"));
    await rename(join(ws.path, "rename-me.txt"), join(ws.path, "renamed.txt"));
    await writeFile(join(ws.path, "new.txt"), "brand new\n");
    await mkdir(join(ws.path, "nested", "dir"), { recursive: true });
    await writeFile(join(ws.path, "nested", "dir", "deep.txt"), "deep\n");
    // git calls a file binary when it has a NUL byte; 1,024 random bytes lack one 1.8% of the time.
    await writeFile(join(ws.path, "new.bin"), Buffer.concat([Buffer.from([0]), randomBytes(1023)]));
    const changedBinary = Buffer.from(BINARY);
    changedBinary[100] = (changedBinary[100]! + 1) % 256;
    await writeFile(join(ws.path, "image.bin"), changedBinary);
    await writeFile(join(ws.path, "staged.txt"), "after\n");
    await git(ws.path, "add", "staged.txt");
    const indexBefore = await git(ws.path, "diff", "--cached", "--name-status");
    const statusBefore = await git(ws.path, "status", "--porcelain");

    const changes = await m.collectChanges(ws);

    // The user's index and the untracked state are untouched.
    expect(await git(ws.path, "diff", "--cached", "--name-status")).toBe(indexBefore);
    expect(await git(ws.path, "status", "--porcelain")).toBe(statusBefore);
    expect(statusBefore).toContain("?? new.txt");

    const byPath = Object.fromEntries(changes.files.map((f) => [f.path, f]));
    expect(byPath["modify.txt"]).toEqual({
      path: "modify.txt",
      status: "modified",
      insertions: 2,
      deletions: 1,
    });
    expect(byPath["delete.txt"]).toMatchObject({ status: "deleted", deletions: 1 });
    expect(byPath["new.txt"]).toMatchObject({ status: "added", insertions: 1 });
    expect(byPath["renamed.txt"]).toMatchObject({ status: "renamed" });
    expect(byPath["committed.txt"]).toMatchObject({ status: "added" });
    expect(byPath["nested/dir/deep.txt"]).toMatchObject({ status: "added" });
    expect(byPath["new.bin"]).toEqual({ path: "new.bin", status: "added", binary: true });
    expect(byPath["image.bin"]).toEqual({ path: "image.bin", status: "modified", binary: true });
    expect(byPath["keep.txt"]).toBeUndefined();
    expect(changes.commits).toEqual([
      { hash: await git(ws.path, "rev-parse", "HEAD"), subject: "agent commit" },
    ]);
    expect(changes.git).toEqual({
      branch: "main",
      commit: await git(ws.path, "rev-parse", "HEAD"),
      dirty: true,
    });
    expect(changes.patch).toBeInstanceOf(Uint8Array);

    const fresh = await mkdtemp(join(tmpdir(), "fresh-"));
    try {
      await git(fresh, "clone", "--quiet", "--", upstream, ".");
      await git(fresh, "checkout", "--quiet", "--detach", start);
      const patchFile = join(scratch, "changes.patch");
      await writeFile(patchFile, changes.patch!);
      await git(fresh, "apply", "--check", patchFile);
      await git(fresh, "apply", patchFile);
      expect(await tree(fresh)).toEqual(await tree(ws.path));
    } finally {
      await rm(fresh, { recursive: true, force: true });
    }
  });

  it("returns an empty change set without a patch when nothing changed", async () => {
    const ws = await m.prepare(makeTask({ git: { url: upstream } }), undefined, () => undefined);
    const changes = await m.collectChanges(ws);
    expect(changes).toEqual({
      files: [],
      commits: [],
      git: { branch: "main", commit: ws.startCommit, dirty: false },
    });
  });

  it("leaves out a patch over the size limit but still lists the files", async () => {
    const small = new WorkspaceManager({ baseDir: base, git: { allowLocalRepos: true }, maxPatchBytes: 256 });
    const ws = await small.prepare(makeTask({ git: { url: upstream } }), undefined, () => undefined);
    await writeFile(join(ws.path, "big.txt"), "x".repeat(10_000));
    const changes = await small.collectChanges(ws);
    expect(changes.files).toEqual([{ path: "big.txt", status: "added", insertions: 1, deletions: 0 }]);
    expect(changes.patch).toBeUndefined();
    expect(changes.patchOmitted).toContain("larger than 256 bytes");
    await small.close();
  });

  it("git-inits a new workspace without a repository so its changes are trackable", async () => {
    const { events, emit } = eventSink();
    const ws = await m.prepare(makeTask(), undefined, emit);
    expect(existsSync(join(ws.path, ".git"))).toBe(true);
    expect(ws.startCommit).toMatch(/^[0-9a-f]{40}$/);
    expect(events[0]).toMatchObject({
      type: "workspace_created",
      workspace: { dirty: false, lastCommit: ws.startCommit },
    });
    await writeFile(join(ws.path, "hello.txt"), "hello\n");
    const changes = await m.collectChanges(ws);
    expect(changes.files).toEqual([{ path: "hello.txt", status: "added", insertions: 1, deletions: 0 }]);
    expect(Buffer.from(changes.patch!).toString("utf8")).toContain("+hello");
    // No metadata file inside the workspace shows up as a change.
    expect(await readdir(ws.path)).toEqual([".git", "hello.txt"]);
  });

  it("answers like git for a new workspace from the template, untouched or changed in any way", async () => {
    // An untouched template workspace is answered from a few file reads (no git process); any
    // change to the working tree or the repository must give what git itself says.
    const changes: Record<string, (dir: string) => Promise<unknown>> = {
      untouched: () => Promise.resolve(),
      "an untracked file": (dir) => writeFile(join(dir, "new.txt"), "new\n"),
      "an empty directory only": (dir) => mkdir(join(dir, "empty")),
      "an empty commit": (dir) =>
        git(
          dir,
          "-c",
          "user.name=a",
          "-c",
          "user.email=a@b",
          "commit",
          "--quiet",
          "--allow-empty",
          "-m",
          "x",
        ),
      "another branch checked out": (dir) => git(dir, "checkout", "--quiet", "-b", "other"),
      "a detached HEAD": (dir) => git(dir, "checkout", "--quiet", "--detach"),
      "an index written": (dir) =>
        git(dir, "update-index", "--refresh").catch(() => git(dir, "read-tree", "HEAD")),
      "a changed config": (dir) => git(dir, "config", "core.autocrlf", "true"),
      "a file inside .git": (dir) => writeFile(join(dir, ".git", "info-extra"), "x"),
    };
    for (const [what, change] of Object.entries(changes)) {
      const ws = await m.prepare(makeTask(), undefined, () => undefined);
      await change(ws.path);
      const byGit = await collectChanges(ws.path, ws.startCommit, { git: new Git() });
      expect({ what, changes: await m.collectChanges(ws) }).toEqual({ what, changes: byGit });
      // A reused workspace's start state is found the same way.
      const again = await m.prepare(makeTask({ name: ws.name }), undefined, () => undefined);
      const summary = (await new RepoState(new Git(), ws.path).pinned())?.summary;
      expect({ what, start: again.startCommit, branch: again.branch }).toEqual({
        what,
        start: summary?.head,
        branch: summary?.branch,
      });
    }
  });

  it("returns no changes for an existing workspace that is not a repository", async () => {
    await mkdir(join(base, "plain"));
    await writeFile(join(base, "plain", "a.txt"), "a\n");
    const ws = await m.prepare(makeTask({ name: "plain" }), undefined, () => undefined);
    expect(ws.created).toBe(false);
    expect(ws.startCommit).toBeUndefined();
    expect(await m.collectChanges(ws)).toEqual({ files: [], commits: [] });
  });
});

describe("commit", () => {
  it("commits as the configured author and reports the stats", async () => {
    const authored = new WorkspaceManager({
      baseDir: base,
      git: { allowLocalRepos: true, userName: "Station Bot", userEmail: "bot@station.example" },
    });
    const ws = await authored.prepare(makeTask({ git: { url: upstream } }), undefined, () => undefined);
    await writeFile(join(ws.path, "modify.txt"), "line 1\n");
    await writeFile(join(ws.path, "added.txt"), "a\nb\n");
    const { events, emit } = eventSink();
    const info = await authored.commit(ws, { message: "--amend is just text\n\nbody" }, { emit });
    expect(info).toMatchObject({ branch: "main", filesChanged: 2, insertions: 2, deletions: 1 });
    expect(await git(ws.path, "log", "-1", "--format=%an <%ae>|%s")).toBe(
      "Station Bot <bot@station.example>|--amend is just text",
    );
    expect(events[0]).toMatchObject({ type: "git_commit", git: { commit: info.hash, filesChanged: 2 } });
    const nothing = await authored.commit(ws, { message: "again" }).catch((e: unknown) => e as StationError);
    expect(nothing).toBeInstanceOf(StationError);
    expect((nothing as StationError).code).toBe(ErrorCodes.GitFailed);
    expect((nothing as StationError).message).toContain("nothing to commit");
    await authored.close();
  });
});

describe("snapshot", () => {
  it("archives the workspace without .git as a tar.gz", async () => {
    const ws = await m.prepare(makeTask({ git: { url: upstream } }), undefined, () => undefined);
    await writeFile(join(ws.path, "untracked.txt"), "u\n");
    const archive = await m.snapshot(ws);
    expect(archive[0]).toBe(0x1f);
    expect(archive[1]).toBe(0x8b);
    const out = await mkdtemp(join(tmpdir(), "snapshot-"));
    try {
      await writeFile(join(scratch, "snap.tar.gz"), archive);
      await extract({ file: join(scratch, "snap.tar.gz"), cwd: out });
      expect(existsSync(join(out, ".git"))).toBe(false);
      expect(await tree(out)).toEqual(await tree(ws.path));
    } finally {
      await rm(out, { recursive: true, force: true });
    }
  });
});

describe("RepoState.summary (one git status for head, branch and dirty)", () => {
  it("matches rev-parse, symbolic-ref and status on new, clean, dirty, renamed and detached trees", async () => {
    const dir = join(scratch, "summary");
    await mkdir(dir);
    const repo = new RepoState(new Git(), dir);
    await git(dir, "init", "--quiet", "--initial-branch=trunk");
    expect(await repo.summary()).toEqual({ head: undefined, branch: "trunk", dirty: false });
    await writeFile(join(dir, "new file.txt"), "untracked\n");
    expect(await repo.summary()).toEqual({ head: undefined, branch: "trunk", dirty: true });
    await rm(join(dir, "new file.txt"));
    const first = await commitFiles(dir, { "a.txt": "a\n".repeat(20) }, "first");
    expect(await repo.summary()).toEqual({ head: first, branch: "trunk", dirty: false });
    expect(await repo.pinned()).toMatchObject({
      gitDir: join(dir, ".git"),
      summary: { head: first, dirty: false },
    });
    await git(dir, "mv", "a.txt", "b\ttab.txt");
    expect(await repo.summary()).toEqual({ head: first, branch: "trunk", dirty: true });
    await git(dir, "commit", "--quiet", "-m", "rename");
    const second = (await git(dir, "rev-parse", "HEAD")).trim();
    await git(dir, "checkout", "--quiet", "--detach", first);
    expect(await repo.summary()).toEqual({ head: first, branch: undefined, dirty: false });
    await git(dir, "checkout", "--quiet", "trunk");
    expect((await repo.summary()).head).toBe(second);
    // A directory inside a repository is not the top of one, nor is a .git directory without a repository.
    await mkdir(join(dir, "sub"));
    expect(await new RepoState(new Git(), join(dir, "sub")).pinned()).toBeUndefined();
    await mkdir(join(dir, "sub", ".git"));
    expect(await new RepoState(new Git(), join(dir, "sub")).pinned()).toBeUndefined();
  });
});
