import { existsSync } from "node:fs";
import { mkdir, readFile, readdir, realpath, rm, symlink, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { ErrorCodes, StationError } from "@station-coding/protocol";
import { tempDir } from "@station-coding/testkit";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { Git, WorkspaceManager } from "@station-coding/worker/internal";
import { eventSink, makeTask } from "./support/workspace-fixtures.js";

let base: string;
let outside: string;
let m: WorkspaceManager;
const SENTINEL = "do not touch\n";

beforeEach(async () => {
  base = await tempDir("ws-sec");
  outside = await tempDir("outside");
  await writeFile(join(outside, "sentinel.txt"), SENTINEL);
  m = new WorkspaceManager({ baseDir: base, git: { allowHttp: true } });
});

afterEach(async () => {
  await m.close();
  await rm(base, { recursive: true, force: true });
  await rm(outside, { recursive: true, force: true });
});

async function outsideUntouched(): Promise<void> {
  expect(await readdir(outside)).toEqual(["sentinel.txt"]);
  expect(await readFile(join(outside, "sentinel.txt"), "utf8")).toBe(SENTINEL);
}

async function rejection(promise: Promise<unknown>): Promise<StationError> {
  const err = await promise.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(StationError);
  return err as StationError;
}

describe("workspace paths", () => {
  it("refuses names that would escape the base", async () => {
    for (const name of ["../x", "/abs", "a/b", "..", ".hidden", "-rf", ""]) {
      const err = await rejection(m.prepare(makeTask({ name }), undefined, () => undefined));
      expect(err.code).toBe(ErrorCodes.InvalidName);
      expect(err.message).toMatch(/^workspace\.name /);
    }
    const org = await rejection(m.prepare(makeTask(), "../acme", () => undefined));
    expect(org.message).toMatch(/^org "\.\.\/acme": /);
    expect(await readdir(base)).toEqual([]);
    await outsideUntouched();
  });

  it("refuses a workspace that is a symbolic link out of the base, touching nothing outside", async () => {
    await symlink(outside, join(base, "evil"));
    const { events, emit } = eventSink();
    const err = await rejection(m.prepare(makeTask({ name: "evil" }), undefined, emit));
    expect(err.code).toBe(ErrorCodes.WorkspaceError);
    expect(err.message).toContain('workspace.name "evil"');
    expect(err.message).toContain("outside the workspace root");
    expect(events).toEqual([]);
    await outsideUntouched();
  });

  it("refuses an org directory that is a symbolic link out of the base", async () => {
    await symlink(outside, join(base, "acme"));
    const err = await rejection(m.prepare(makeTask({ name: "ws" }), "acme", () => undefined));
    expect(err.code).toBe(ErrorCodes.WorkspaceError);
    expect(err.message).toMatch(/^org "acme": /);
    await outsideUntouched();
  });

  it("accepts a symbolic link that stays inside the base", async () => {
    await mkdir(join(base, "real"));
    await symlink(join(base, "real"), join(base, "alias"));
    const ws = await m.prepare(makeTask({ name: "alias" }), undefined, () => undefined);
    expect(ws.path).toBe(join(await realpath(base), "real"));
  });

  it("deletes only the link when a workspace was swapped for a link out of the base", async () => {
    const task = makeTask({ cleanup: "on_session_end" });
    const ws = await m.prepare(task, undefined, () => undefined);
    await rm(ws.path, { recursive: true });
    await symlink(outside, ws.path);
    const outcome = await m.finish({ ...task, op: "close" }, ws, "completed");
    expect(outcome.deleted).toEqual([ws.path]);
    expect(existsSync(ws.path)).toBe(false);
    await outsideUntouched();
  });
});

describe("hostile repository URLs and refs", () => {
  it("refuses them before git runs or anything is created, naming the field", async () => {
    const cases: [string, string][] = [
      [`ext::sh -c touch% ${join(outside, "pwned")}`, "remote-helper"],
      [`--upload-pack=touch ${join(outside, "x")}`, 'must not start with "-"'],
      [`file://${join(outside, "repo")}`, "file:// URLs are not allowed"],
      [join(outside, "repo"), "local paths are not allowed"],
      ["http://user:pass@127.0.0.1:9/x", "must not embed credentials"],
    ];
    for (const [url, rule] of cases) {
      const task = makeTask({ git: { url } });
      const err = await rejection(m.prepare(task, undefined, () => undefined));
      expect(err.code).toBe(ErrorCodes.GitRefused);
      expect(err.retryable).toBe(false);
      expect(err.message).toMatch(/^workspace\.git\.url /);
      expect(err.message).toContain(rule);
      expect(existsSync(join(base, task.workspace.name))).toBe(false);
    }
    for (const [field, value] of [
      ["branch", "--upload-pack=touch x"],
      ["ref", "a..b"],
      ["ref", "HEAD@{1}"],
    ] as const) {
      const err = await rejection(
        m.prepare(
          makeTask({ git: { url: "https://example.com/x.git", [field]: value } }),
          undefined,
          () => undefined,
        ),
      );
      expect(err.code).toBe(ErrorCodes.GitRefused);
      expect(err.message).toMatch(new RegExp(`^workspace\\.git\\.${field} `));
    }
    const sparse = await rejection(
      m.prepare(
        makeTask({ git: { url: "https://example.com/x.git", sparse: ["../up"] } }),
        undefined,
        () => undefined,
      ),
    );
    expect(sparse.message).toMatch(/^workspace\.git\.sparse\[0\] /);
    await outsideUntouched();
  });

  it("has git itself refuse ext:: and file transports even when called directly", async () => {
    const git = new Git();
    const target = join(base, "direct");
    const pwned = join(outside, "pwned");
    await expect(git.run(["clone", "--", `ext::sh -c touch% ${pwned}`, target])).rejects.toThrow(
      /git clone failed/,
    );
    await expect(git.run(["clone", "--", outside, join(base, "direct2")])).rejects.toThrow(
      /git clone failed/,
    );
    expect(existsSync(pwned)).toBe(false);
    await outsideUntouched();
    await git.dispose();
  });
});

describe("staged input files", () => {
  it("writes valid names into the workspace", async () => {
    const ws = await m.prepare(makeTask(), undefined, () => undefined);
    const written = await m.stageInputs(ws, [
      { name: "data.csv", data: new TextEncoder().encode("a,b\n") },
      { name: "spec.md", data: new TextEncoder().encode("# spec\n") },
    ]);
    expect(written).toEqual([join(ws.path, "data.csv"), join(ws.path, "spec.md")]);
    expect(await readFile(join(ws.path, "data.csv"), "utf8")).toBe("a,b\n");
  });

  it("refuses hostile names, symbolic links and oversized inputs, writing nothing", async () => {
    const ws = await m.prepare(makeTask(), undefined, () => undefined);
    const data = new TextEncoder().encode("x");
    for (const name of ["../escape.txt", "/etc/passwd", ".git", "a/b.txt", "-rf", "", "..", "x\u0000y"]) {
      const err = await rejection(
        m.stageInputs(ws, [
          { name: "ok.txt", data },
          { name, data },
        ]),
      );
      expect(err.code).toBe(ErrorCodes.ArtifactError);
      expect(err.message).toMatch(/^inputs\[1\]/);
    }
    expect(existsSync(join(ws.path, "ok.txt"))).toBe(false);

    await symlink(join(outside, "sentinel.txt"), join(ws.path, "link.txt"));
    const link = await rejection(m.stageInputs(ws, [{ name: "link.txt", data }]));
    expect(link.message).toContain("symbolic link");

    const small = new WorkspaceManager({ baseDir: base, maxInputBytes: 4 });
    const big = await rejection(small.stageInputs(ws, [{ name: "big.bin", data: new Uint8Array(5) }]));
    expect(big.message).toContain("more than the limit of 4 bytes");
    await outsideUntouched();
  });
});
