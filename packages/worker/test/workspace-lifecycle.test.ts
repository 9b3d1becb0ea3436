import { existsSync } from "node:fs";
import { mkdir, readFile, readdir, realpath, rm, writeFile } from "node:fs/promises";
import { join } from "node:path";
import type { ResolvedTask } from "@station-coding/protocol";
import { ErrorCodes, StationError } from "@station-coding/protocol";
import { tempDir } from "@station-coding/testkit";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { WorkspaceManager } from "@station-coding/worker/internal";
import type { WorkspaceManagerOptions } from "@station-coding/worker/internal";
import { eventSink, makeTask } from "./support/workspace-fixtures.js";

let base: string;
const managers: WorkspaceManager[] = [];

beforeEach(async () => {
  base = await tempDir("ws-life");
});

afterEach(async () => {
  await Promise.all(managers.splice(0).map((m) => m.close()));
  await rm(base, { recursive: true, force: true });
});

function manager(options: Partial<WorkspaceManagerOptions> = {}): WorkspaceManager {
  const m = new WorkspaceManager({ baseDir: base, ...options });
  managers.push(m);
  return m;
}

const close = (task: ResolvedTask): ResolvedTask => ({ ...task, op: "close" });

describe("cleanup policies", () => {
  it("on_session_end keeps the workspace after tasks and deletes it on close", async () => {
    const m = manager();
    const task = makeTask({ cleanup: "on_session_end" });
    const ws = await m.prepare(task, undefined, () => undefined);
    expect(await m.finish(task, ws, "completed")).toMatchObject({ deleted: [] });
    expect(await m.finish(task, await m.prepare(task, undefined, () => undefined), "error")).toMatchObject({
      deleted: [],
    });
    expect(existsSync(ws.path)).toBe(true);
    const closing = close(task);
    const outcome = await m.finish(
      closing,
      await m.prepare(closing, undefined, () => undefined),
      "completed",
    );
    expect(outcome.deleted).toEqual([ws.path]);
    expect(existsSync(ws.path)).toBe(false);
  });

  it("is on_session_end by default, or the worker's configured policy", async () => {
    const m = manager();
    const task = makeTask();
    const ws = await m.prepare(task, undefined, () => undefined);
    expect((await m.finish(task, ws, "completed")).deleted).toEqual([]);
    const onSuccess = manager({ cleanupPolicy: "on_success" });
    const other = makeTask();
    const ws2 = await onSuccess.prepare(other, undefined, () => undefined);
    expect((await onSuccess.finish(other, ws2, "completed")).deleted).toEqual([ws2.path]);
  });

  it("on_success deletes after a completed task only", async () => {
    const m = manager();
    const task = makeTask({ cleanup: "on_success" });
    for (const status of ["error", "timeout", "cancelled"] as const) {
      const ws = await m.prepare(task, undefined, () => undefined);
      expect((await m.finish(task, ws, status)).deleted).toEqual([]);
      expect(existsSync(ws.path)).toBe(true);
    }
    const ws = await m.prepare(task, undefined, () => undefined);
    const outcome = await m.finish(task, ws, "completed");
    expect(outcome).toEqual({ deleted: [ws.path], reason: "task completed (cleanup on_success)" });
    expect(existsSync(ws.path)).toBe(false);
  });

  it("a deleted workspace is gone from its path at once, its files removed in the background by close", async () => {
    const m = manager();
    const task = makeTask({ cleanup: "on_success" });
    const ws = await m.prepare(task, undefined, () => undefined);
    await writeFile(join(ws.path, "file.txt"), "x");
    expect(await m.finish(task, ws, "completed")).toMatchObject({ deleted: [ws.path] });
    expect(existsSync(ws.path)).toBe(false);
    await m.close();
    expect(await readdir(join(base, ".station-trash"))).toEqual([]);
  });

  it("empties what a worker that is gone left in the trash, and nothing of a live one", async () => {
    const trash = join(base, ".station-trash");
    await mkdir(join(trash, "999999999-left-by-a-dead-worker", ".git"), { recursive: true });
    await mkdir(join(trash, `${process.ppid}-of-a-live-worker`), { recursive: true });
    const m = manager();
    await m.warmUp();
    await m.close();
    expect(await readdir(trash)).toEqual([`${process.ppid}-of-a-live-worker`]);
  });

  it("manual never deletes, not even on close", async () => {
    const m = manager({ cleanupPolicy: "on_success" });
    const task = makeTask({ cleanup: "manual" });
    const ws = await m.prepare(task, undefined, () => undefined);
    expect((await m.finish(task, ws, "completed")).deleted).toEqual([]);
    const closing = close(task);
    expect(
      (await m.finish(closing, await m.prepare(closing, undefined, () => undefined), "completed")).deleted,
    ).toEqual([]);
    expect(existsSync(ws.path)).toBe(true);
  });

  it("does not delete a workspace another task is still using", async () => {
    const m = manager();
    const task = makeTask({ cleanup: "on_success" });
    const first = await m.prepare(task, undefined, () => undefined);
    const second = await m.prepare(task, undefined, () => undefined);
    expect(await m.finish(task, first, "completed")).toMatchObject({
      deleted: [],
      reason: expect.stringContaining("another task"),
    });
    expect((await m.finish(task, second, "completed")).deleted).toEqual([second.path]);
  });
});

describe("workflow scope", () => {
  it("keeps the workspace across the workflow's tasks until the workflow closes", async () => {
    const m = manager();
    const name = "wf-shared";
    const step = (taskID: string) =>
      makeTask({ taskID, name, scope: "workflow", scopeID: "wf-1", cleanup: "on_success" });
    const sibling = makeTask({ name: "wf-sibling", scope: "workflow", scopeID: "wf-1" });
    const otherWorkflow = makeTask({ name: "wf-other", scope: "workflow", scopeID: "wf-2" });
    const siblingWs = await m.prepare(sibling, undefined, () => undefined);
    await m.finish(sibling, siblingWs, "completed");
    const otherWs = await m.prepare(otherWorkflow, undefined, () => undefined);
    await m.finish(otherWorkflow, otherWs, "completed");

    const first = await m.prepare(step("step-1"), undefined, () => undefined);
    await writeFile(join(first.path, "from-step-1.txt"), "1\n");
    expect((await m.finish(step("step-1"), first, "completed")).deleted).toEqual([]);

    const { events, emit } = eventSink();
    const second = await m.prepare(step("step-2"), undefined, emit);
    expect(second.path).toBe(first.path);
    expect(events[0]).toMatchObject({ type: "workspace_reused", workspace: { scope: "workflow" } });
    expect(await readFile(join(second.path, "from-step-1.txt"), "utf8")).toBe("1\n");
    expect((await m.finish(step("step-2"), second, "completed")).deleted).toEqual([]);

    const closing = { ...step("close"), op: "close" as const };
    const outcome = await m.finish(
      closing,
      await m.prepare(closing, undefined, () => undefined),
      "completed",
    );
    expect(outcome.deleted.sort()).toEqual([first.path, siblingWs.path].sort());
    expect(existsSync(first.path)).toBe(false);
    expect(existsSync(siblingWs.path)).toBe(false);
    expect(existsSync(otherWs.path)).toBe(true);
  });

  it("requires a scopeID and refuses a workspace of another workflow", async () => {
    const m = manager();
    const missing = await m
      .prepare(makeTask({ scope: "workflow" }), undefined, () => undefined)
      .catch((e: unknown) => e as StationError);
    expect(missing).toBeInstanceOf(StationError);
    expect((missing as StationError).message).toContain("workspace.scopeID: is required");
    await m.prepare(makeTask({ name: "wf-a", scope: "workflow", scopeID: "a" }), undefined, () => undefined);
    const other = await m
      .prepare(makeTask({ name: "wf-a", scope: "workflow", scopeID: "b" }), undefined, () => undefined)
      .catch((e: unknown) => e as StationError);
    expect((other as StationError).code).toBe(ErrorCodes.WorkspaceError);
    expect((other as StationError).message).toContain('belongs to workflow "a"');
  });
});

describe("records and sweeping", () => {
  it("keeps its record outside the workspace", async () => {
    const m = manager();
    const task = makeTask({ cleanup: "manual" });
    const ws = await m.prepare(task, "acme", () => undefined);
    expect(await readdir(ws.path)).toEqual([".git"]);
    const record = JSON.parse(
      await readFile(
        join(await realpath(base), ".station-meta", "acme", `${task.workspace.name}.json`),
        "utf8",
      ),
    );
    expect(record).toMatchObject({
      version: 1,
      name: task.workspace.name,
      org: "acme",
      scope: "agent",
      cleanup: "manual",
    });
  });

  it("sweeps only workspaces untouched for longer than the age, sparing manual and busy ones", async () => {
    let now = Date.parse("2030-01-01T00:00:00Z");
    const m = manager({ now: () => now });
    const hour = 3_600_000;
    const old = makeTask();
    const oldWs = await m.prepare(old, "acme", () => undefined);
    await m.finish(old, oldWs, "completed");
    const keptManual = makeTask({ cleanup: "manual" });
    const manualWs = await m.prepare(keptManual, undefined, () => undefined);
    await m.finish(keptManual, manualWs, "completed");
    const busy = makeTask();
    const busyWs = await m.prepare(busy, undefined, () => undefined);
    now += 10 * hour;
    const recent = makeTask();
    const recentWs = await m.prepare(recent, undefined, () => undefined);
    await m.finish(recent, recentWs, "completed");
    now += hour;

    expect(await m.sweep(5 * hour)).toEqual([oldWs.path]);
    expect(existsSync(oldWs.path)).toBe(false);
    for (const kept of [manualWs, busyWs, recentWs]) expect(existsSync(kept.path)).toBe(true);

    await m.finish(busy, busyWs, "completed");
    now += 6 * hour;
    expect((await m.sweep(5 * hour)).sort()).toEqual([busyWs.path, recentWs.path].sort());
    expect(existsSync(manualWs.path)).toBe(true);
  });

  it("release keeps a retried task's workspace but lets the sweep see it as idle", async () => {
    let now = Date.parse("2030-01-01T00:00:00Z");
    const m = manager({ now: () => now, cleanupPolicy: "on_success" });
    const task = makeTask();
    const ws = await m.prepare(task, undefined, () => undefined);
    now += 60_000;
    expect(await m.sweep(1_000)).toEqual([]);
    await m.release(ws);
    expect(existsSync(ws.path)).toBe(true);
    now += 60_000;
    expect(await m.sweep(1_000)).toEqual([ws.path]);
  });
});
