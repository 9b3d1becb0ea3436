import { createServer } from "node:net";
import type { Server } from "node:net";
import { existsSync } from "node:fs";
import { readFile, realpath, rm, writeFile } from "node:fs/promises";
import { join } from "node:path";
import type { AddressInfo } from "node:net";
import { ErrorCodes, StationError } from "@station-coding/protocol";
import { GitServer, git, tempDir } from "@station-coding/testkit";
import { SecretRedactor, WorkspaceManager } from "@station-coding/worker/internal";
import type { WorkspaceManagerOptions } from "@station-coding/worker/internal";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import {
  argvSpy,
  captureLogger,
  eventSink,
  makeTask,
  makeToken,
  occurrences,
} from "./support/workspace-fixtures.js";

const TOKEN = makeToken();
let server: GitServer;
let base: string;
let hashes: Record<string, string>;
const managers: WorkspaceManager[] = [];

beforeAll(async () => {
  server = await GitServer.start({ token: TOKEN });
  hashes = await server.createRepo(
    "private",
    {
      "README.md": "# private\n",
      "src/app.ts": "export const x = 1;\n",
      "docs/guide.md": "guide\n",
      "assets/logo.txt": "logo\n",
    },
    { feature: { "src/feature.ts": "export const feature = true;\n" } },
  );
  await server.tag("private", "v1", hashes.main!);
  await server.commitUpstream("private", { "CHANGELOG.md": "second\n" }, "second commit");
});

afterAll(async () => {
  await server.stop();
});

afterEach(async () => {
  await Promise.all(managers.splice(0).map((m) => m.close()));
  if (base) await rm(base, { recursive: true, force: true });
});

async function manager(options: Partial<WorkspaceManagerOptions> = {}): Promise<WorkspaceManager> {
  base = await tempDir("ws-git");
  const m = new WorkspaceManager({
    baseDir: base,
    ...options,
    git: { allowHttp: true, timeout: 20_000, ...options.git },
  });
  managers.push(m);
  return m;
}

async function rejection(promise: Promise<unknown>): Promise<StationError> {
  const err = await promise.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(StationError);
  return err as StationError;
}

describe("cloning a private repository over smart HTTP", () => {
  it("clones and pushes with the task's token, which appears nowhere it should not", async () => {
    const spy = await argvSpy();
    const redactor = new SecretRedactor();
    const { logger, lines } = captureLogger();
    const m = await manager({ redactor, logger, git: { allowHttp: true, binary: spy.binary } });
    const { events, emit } = eventSink();
    const task = makeTask({ git: { url: server.url("private"), token: TOKEN } });

    const ws = await m.prepare(task, undefined, emit);
    expect(ws.created).toBe(true);
    expect(await readFile(join(ws.path, "README.md"), "utf8")).toBe("# private\n");
    expect(ws.startCommit).toBe(await server.head("private"));
    expect(ws.branch).toBe("main");
    const clone = events.find((e) => e.type === "git_clone");
    expect(clone?.git).toMatchObject({ url: server.url("private"), branch: "main", commit: ws.startCommit });
    expect(clone?.git?.duration).toBeGreaterThanOrEqual(0);
    expect(events.at(-1)).toMatchObject({
      type: "workspace_created",
      content: ws.path,
      workspace: {
        name: task.workspace.name,
        path: ws.path,
        dirty: false,
        lastCommit: ws.startCommit,
        scope: "agent",
      },
    });
    expect(redactor.redact(`x ${TOKEN} y`)).toBe("x [REDACTED] y");

    await writeFile(join(ws.path, "new.txt"), "new\n");
    const commit = await m.commit(ws, { message: "add new.txt" }, { emit });
    expect(commit).toMatchObject({
      branch: "main",
      message: "add new.txt",
      filesChanged: 1,
      insertions: 1,
      deletions: 0,
    });
    const pushed = await m.push(ws, { git: { url: server.url("private"), token: TOKEN } }, { emit });
    expect(pushed).toEqual({ remote: "origin", branch: "main", commit: commit.hash });
    expect(await server.head("private")).toBe(commit.hash);
    expect(events.map((e) => e.type)).toEqual(["git_clone", "workspace_created", "git_commit", "git_push"]);
    expect(events.find((e) => e.type === "git_push")?.git).toMatchObject({
      remote: "origin",
      branch: "main",
      commit: commit.hash,
    });
    const changes = await m.collectChanges(ws);

    expect(occurrences(JSON.stringify(events), TOKEN)).toBe(0);
    expect(occurrences(lines.join(""), TOKEN)).toBe(0);
    expect(lines.length).toBeGreaterThan(0);
    expect(occurrences(await readFile(join(ws.path, ".git", "config"), "utf8"), TOKEN)).toBe(0);
    expect(await git(ws.path, "remote", "get-url", "origin")).toBe(server.url("private"));
    expect(occurrences(changes.patch ?? new Uint8Array(), TOKEN)).toBe(0);
    expect(occurrences(await spy.log(), TOKEN)).toBe(0);
    expect(await spy.log()).toContain("-c protocol.ext.allow=never");
    expect(await spy.log()).toContain("-c protocol.file.allow=never");
    expect(server.requests.some((r) => r.authorized && r.path.endsWith("/git-receive-pack"))).toBe(true);
    await spy.dispose();
  });

  it("takes the token from the worker's environment variable for the org", async () => {
    process.env.TEST_ACME_GIT_TOKEN = TOKEN;
    try {
      const m = await manager({ git: { allowHttp: true, tokenEnvByOrg: { acme: "TEST_ACME_GIT_TOKEN" } } });
      const ws = await m.prepare(makeTask({ git: { url: server.url("private") } }), "acme", () => undefined);
      expect(ws.path).toBe(join(await realpath(base), "acme", ws.name));
      expect(existsSync(join(ws.path, "README.md"))).toBe(true);
      // Another org has no token configured: the clone fails for lack of credentials.
      const err = await rejection(
        m.prepare(makeTask({ git: { url: server.url("private") } }), "other", () => undefined),
      );
      expect(err.code).toBe(ErrorCodes.GitAuthFailed);
    } finally {
      delete process.env.TEST_ACME_GIT_TOKEN;
    }
  });

  it("takes the token from the secrets bucket named by tokenFromKV", async () => {
    const asked: string[] = [];
    const m = await manager({
      getSecret: async (key, org) => {
        asked.push(`${org ?? "-"}/${key}`);
        return key === "git-token" ? TOKEN : undefined;
      },
    });
    const ws = await m.prepare(
      makeTask({ git: { url: server.url("private"), tokenFromKV: "git-token" } }),
      undefined,
      () => undefined,
    );
    expect(existsSync(join(ws.path, "README.md"))).toBe(true);
    expect(asked).toEqual(["-/git-token"]);
    const missing = await rejection(
      m.prepare(
        makeTask({ git: { url: server.url("private"), tokenFromKV: "nope" } }),
        undefined,
        () => undefined,
      ),
    );
    expect(missing.code).toBe(ErrorCodes.GitAuthFailed);
    expect(missing.message).toContain(
      'workspace.git.tokenFromKV "nope": no key "nope" in the secrets bucket coding-secrets;',
    );
  });

  it("fails without a token with a clear, non-retryable error and leaves no workspace behind", async () => {
    const m = await manager();
    const task = makeTask({ git: { url: server.url("private") } });
    const err = await rejection(m.prepare(task, undefined, () => undefined));
    expect(err.code).toBe(ErrorCodes.GitAuthFailed);
    expect(err.retryable).toBe(false);
    expect(err.message).toContain(`git clone of ${server.url("private")} failed`);
    expect(err.message).toContain("needs credentials and none were given");
    expect(existsSync(join(base, task.workspace.name))).toBe(false);
  });

  it("fails with a wrong token with its own non-retryable GIT_AUTH_FAILED error that does not contain it", async () => {
    const wrong = makeToken();
    const { logger, lines } = captureLogger();
    const m = await manager({ logger });
    const { events, emit } = eventSink();
    const err = await rejection(
      m.prepare(makeTask({ git: { url: server.url("private"), token: wrong } }), undefined, emit),
    );
    expect(err.code).toBe(ErrorCodes.GitAuthFailed);
    expect(err.retryable).toBe(false);
    expect(err.message).toContain("authentication failed: the token was refused");
    for (const text of [err.message, JSON.stringify(events), lines.join(""), String(err.stack)]) {
      expect(occurrences(text, wrong)).toBe(0);
    }
  });

  it("reports a missing repository, branch or ref as non-retryable GIT_FAILED", async () => {
    const m = await manager();
    const repo = await rejection(
      m.prepare(makeTask({ git: { url: server.url("missing"), token: TOKEN } }), undefined, () => undefined),
    );
    expect(repo.code).toBe(ErrorCodes.GitFailed);
    expect(repo.message).toContain("repository not found");

    const branch = await rejection(
      m.prepare(
        makeTask({ git: { url: server.url("private"), token: TOKEN, branch: "nope" } }),
        undefined,
        () => undefined,
      ),
    );
    expect(branch.code).toBe(ErrorCodes.GitFailed);
    expect(branch.message).toContain("branch or ref not found");

    const task = makeTask({ git: { url: server.url("private"), token: TOKEN, ref: "no-such-tag" } });
    const ref = await rejection(m.prepare(task, undefined, () => undefined));
    expect(ref.code).toBe(ErrorCodes.GitFailed);
    expect(ref.retryable).toBe(false);
    expect(ref.message).toContain("branch or ref not found");
    expect(existsSync(join(base, task.workspace.name))).toBe(false);
  });

  it("reports an unreachable host and a time limit as retryable GIT_UNAVAILABLE", async () => {
    const m = await manager({ git: { allowHttp: true, cloneTimeout: 1_500 } });
    const closed = await listen();
    const port = (closed.address() as AddressInfo).port;
    await new Promise<void>((resolve) => closed.close(() => resolve()));
    const refused = await rejection(
      m.prepare(
        makeTask({ git: { url: `http://127.0.0.1:${port}/x.git`, token: TOKEN } }),
        undefined,
        () => undefined,
      ),
    );
    expect(refused.code).toBe(ErrorCodes.GitUnavailable);
    expect(refused.retryable).toBe(true);
    expect(refused.message).toContain("could not be reached");

    const silent = await listen();
    try {
      const url = `http://127.0.0.1:${(silent.address() as AddressInfo).port}/x.git`;
      const started = Date.now();
      const timedOut = await rejection(
        m.prepare(makeTask({ git: { url, token: TOKEN } }), undefined, () => undefined),
      );
      expect(timedOut.code).toBe(ErrorCodes.GitUnavailable);
      expect(timedOut.retryable).toBe(true);
      expect(timedOut.message).toMatch(/timed out after 1.5s/);
      expect(Date.now() - started).toBeLessThan(10_000);
    } finally {
      await new Promise<void>((resolve) => silent.close(() => resolve()));
    }
  });

  it("aborts a clone when the signal fires", async () => {
    const m = await manager();
    const silent = await listen();
    try {
      const url = `http://127.0.0.1:${(silent.address() as AddressInfo).port}/x.git`;
      const controller = new AbortController();
      setTimeout(() => controller.abort(new Error("stop now")), 200);
      const err = await m
        .prepare(makeTask({ git: { url } }), undefined, () => undefined, controller.signal)
        .catch((e: unknown) => e);
      expect((err as Error).message).toBe("stop now");
    } finally {
      await new Promise<void>((resolve) => silent.close(() => resolve()));
    }
  });
});

describe("pushing", () => {
  it("pushes a new branch with setUpstream, with the token recorded by tokenFromKV", async () => {
    await server.createRepo("pushes", { "a.txt": "a\n" });
    const m = await manager({ getSecret: async (key) => (key === "push-token" ? TOKEN : undefined) });
    const spec = { url: server.url("pushes"), tokenFromKV: "push-token" };
    const ws = await m.prepare(makeTask({ git: spec }), undefined, () => undefined);
    await git(ws.path, "checkout", "--quiet", "-b", "agent/change");
    await writeFile(join(ws.path, "b.txt"), "b\n");
    const commit = await m.commit(ws, { message: "agent change" });
    // A later push task carries no git spec: the recorded tokenFromKV key is used again.
    const pushed = await m.push(ws, { setUpstream: true });
    expect(pushed).toEqual({ remote: "origin", branch: "agent/change", commit: commit.hash });
    expect(await server.head("pushes", "agent/change")).toBe(commit.hash);
    expect(await git(ws.path, "rev-parse", "--abbrev-ref", "agent/change@{upstream}")).toBe(
      "origin/agent/change",
    );
  });

  it("reports a rejected non-fast-forward push as non-retryable GIT_FAILED", async () => {
    await server.createRepo("diverged", { "a.txt": "a\n" });
    const m = await manager();
    const spec = { url: server.url("diverged"), token: TOKEN };
    const ws = await m.prepare(makeTask({ git: spec }), undefined, () => undefined);
    await server.commitUpstream("diverged", { "up.txt": "up\n" }, "upstream moved");
    await writeFile(join(ws.path, "mine.txt"), "mine\n");
    await m.commit(ws, { message: "mine" });
    const err = await rejection(m.push(ws, { git: spec }));
    expect(err.code).toBe(ErrorCodes.GitFailed);
    expect(err.retryable).toBe(false);
    expect(err.message).toContain("the remote rejected the push");
  });

  it("never hands the token to a remote other than the one the workspace was cloned from", async () => {
    await server.createRepo("victim", { "a.txt": "a\n" });
    await server.createRepo("elsewhere", { "e.txt": "e\n" });
    const m = await manager();
    const spec = { url: server.url("victim"), token: TOKEN };
    const ws = await m.prepare(makeTask({ git: spec }), undefined, () => undefined);
    await git(ws.path, "remote", "add", "sneaky", server.url("elsewhere"));
    await writeFile(join(ws.path, "x.txt"), "x\n");
    await m.commit(ws, { message: "x" });
    const err = await rejection(m.push(ws, { remote: "sneaky", git: spec }));
    expect(err.code).toBe(ErrorCodes.GitAuthFailed);
    expect(err.message).toContain("needs credentials and none were given");
    expect(server.requests.filter((r) => r.path.startsWith("/elsewhere.git/") && r.authorized)).toEqual([]);

    await git(ws.path, "remote", "set-url", "--push", "origin", server.url("elsewhere"));
    const redirected = await rejection(m.push(ws, { git: spec }));
    expect(redirected.code).toBe(ErrorCodes.GitAuthFailed);
    expect(server.requests.filter((r) => r.path.startsWith("/elsewhere.git/") && r.authorized)).toEqual([]);
  });
});

describe("branches, refs, shallow and sparse clones", () => {
  it("clones a branch", async () => {
    const m = await manager();
    const ws = await m.prepare(
      makeTask({ git: { url: server.url("private"), token: TOKEN, branch: "feature" } }),
      undefined,
      () => undefined,
    );
    expect(ws.branch).toBe("feature");
    expect(ws.startCommit).toBe(hashes.feature);
    expect(existsSync(join(ws.path, "src", "feature.ts"))).toBe(true);
  });

  it("checks out a ref (tag or commit) detached and emits git_checkout", async () => {
    const m = await manager();
    const { events, emit } = eventSink();
    const ws = await m.prepare(
      makeTask({ git: { url: server.url("private"), token: TOKEN, ref: "v1" } }),
      undefined,
      emit,
    );
    expect(ws.startCommit).toBe(hashes.main);
    expect(ws.branch).toBeUndefined();
    expect(existsSync(join(ws.path, "CHANGELOG.md"))).toBe(false);
    expect(events.find((e) => e.type === "git_checkout")?.git).toMatchObject({
      ref: "v1",
      commit: hashes.main,
    });

    const byHash = await m.prepare(
      makeTask({ git: { url: server.url("private"), token: TOKEN, ref: hashes.feature! } }),
      undefined,
      () => undefined,
    );
    expect(byHash.startCommit).toBe(hashes.feature);
  });

  it("makes a shallow clone with depth 1", async () => {
    const m = await manager();
    const ws = await m.prepare(
      makeTask({ git: { url: server.url("private"), token: TOKEN, depth: 1 } }),
      undefined,
      () => undefined,
    );
    expect(await git(ws.path, "rev-list", "--count", "HEAD")).toBe("1");
    expect(await git(ws.path, "rev-parse", "--is-shallow-repository")).toBe("true");
  });

  it("checks out only the sparse paths", async () => {
    const m = await manager();
    const ws = await m.prepare(
      makeTask({ git: { url: server.url("private"), token: TOKEN, sparse: ["docs"] } }),
      undefined,
      () => undefined,
    );
    expect(existsSync(join(ws.path, "docs", "guide.md"))).toBe(true);
    expect(existsSync(join(ws.path, "README.md"))).toBe(true);
    expect(existsSync(join(ws.path, "src"))).toBe(false);
    expect(existsSync(join(ws.path, "assets"))).toBe(false);
  });
});

describe("reusing a clone", () => {
  it("pulls a new upstream commit on reuse, and not with pull: false", async () => {
    const repo = "reuse";
    await server.createRepo(repo, { "a.txt": "a\n" });
    const m = await manager();
    const spec = { url: server.url(repo), token: TOKEN };
    const name = "reused";
    const first = await m.prepare(makeTask({ name, git: spec }), undefined, () => undefined);
    const upstream = await server.commitUpstream(repo, { "b.txt": "b\n" }, "upstream change");

    const { events: noPull, emit: emitNoPull } = eventSink();
    const kept = await m.prepare(makeTask({ name, git: { ...spec, pull: false } }), undefined, emitNoPull);
    expect(kept.startCommit).toBe(first.startCommit);
    expect(noPull.map((e) => e.type)).toEqual(["workspace_reused"]);

    const { events, emit } = eventSink();
    const second = await m.prepare(makeTask({ name, git: spec }), undefined, emit);
    expect(second.created).toBe(false);
    expect(second.startCommit).toBe(upstream);
    expect(await readFile(join(second.path, "b.txt"), "utf8")).toBe("b\n");
    expect(events.map((e) => e.type)).toEqual(["git_pull", "workspace_reused"]);
    expect(events[0]?.git).toMatchObject({ url: spec.url, branch: "main", commit: upstream });
    expect(events[1]?.workspace).toMatchObject({ lastCommit: upstream, dirty: false });
  });

  it("reports a dirty workspace on reuse", async () => {
    const m = await manager();
    const spec = { url: server.url("private"), token: TOKEN, pull: false };
    const name = "dirty";
    const ws = await m.prepare(makeTask({ name, git: spec }), undefined, () => undefined);
    await writeFile(join(ws.path, "README.md"), "changed\n");
    const { events, emit } = eventSink();
    await m.prepare(makeTask({ name, git: spec }), undefined, emit);
    expect(events.at(-1)).toMatchObject({ type: "workspace_reused", workspace: { dirty: true } });
    expect((await m.collectChanges(ws)).git?.dirty).toBe(true);
  });

  it("refuses to reuse a workspace cloned from another repository", async () => {
    await server.createRepo("other", { "o.txt": "o\n" });
    const m = await manager();
    await m.prepare(
      makeTask({ name: "mixed", git: { url: server.url("private"), token: TOKEN } }),
      undefined,
      () => undefined,
    );
    const err = await rejection(
      m.prepare(
        makeTask({ name: "mixed", git: { url: server.url("other"), token: TOKEN } }),
        undefined,
        () => undefined,
      ),
    );
    expect(err.code).toBe(ErrorCodes.WorkspaceError);
    expect(err.message).toContain(`is a clone of ${server.url("private")}`);
  });

  it("refuses to hand the token to a remote the agent redirected", async () => {
    const m = await manager();
    const spec = { url: server.url("private"), token: TOKEN };
    const ws = await m.prepare(makeTask({ name: "redirected", git: spec }), undefined, () => undefined);
    await git(ws.path, "config", `url.http://127.0.0.1:1/.insteadOf`, server.url("private"));
    const before = server.requests.length;
    const err = await rejection(
      m.prepare(makeTask({ name: "redirected", git: spec }), undefined, () => undefined),
    );
    expect(err.code).toBe(ErrorCodes.GitRefused);
    expect(err.message).toContain("refusing to send credentials");
    expect(server.requests.length).toBe(before);
  });
});

/** A TCP server that accepts connections and never answers (reading, so it sees the client go). */
function listen(): Promise<Server> {
  return new Promise((resolve) => {
    const s = createServer((socket) => socket.resume());
    s.listen(0, "127.0.0.1", () => resolve(s));
  });
}
