// The readers-writer exclusion between the agent's tool calls in one workspace: bash alone, file
// tools together, in arrival order; holds end with their call, their task or the worker.
import { mkdir, rm, symlink } from "node:fs/promises";
import { realpathSync } from "node:fs";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it, vi } from "vitest";
import { tempDir } from "@station-coding/testkit";
import {
  HoldAbandonedError,
  WorkspaceExclusion,
  holdKey,
  toolHoldMode,
} from "@station-coding/worker/internal";
import type { HoldMode } from "@station-coding/worker/internal";

let root: string;
let ws: string;
let other: string;
beforeAll(async () => {
  root = realpathSync(await tempDir("exclusion"));
  ws = join(root, "ws");
  other = join(root, "other");
  await mkdir(ws);
  await mkdir(other);
  await symlink(ws, join(root, "alias"));
});
afterAll(async () => {
  await rm(root, { recursive: true, force: true });
});

/** A request and whether it was granted or abandoned yet. */
function track(
  exclusion: WorkspaceExclusion,
  key: string,
  mode: HoldMode,
  options: { owner?: string; workspace?: string; signal?: AbortSignal } = {},
) {
  const seen = { granted: false, error: undefined as unknown };
  const done = exclusion
    .acquire({
      workspace: options.workspace ?? ws,
      mode,
      key,
      owner: options.owner ?? "task-1",
      ...(options.signal ? { signal: options.signal } : {}),
    })
    .then(
      () => void (seen.granted = true),
      (err: unknown) => void (seen.error = err),
    );
  return { seen, done };
}

const keys = (list: { key: string }[]) => list.map((e) => e.key);

describe("WorkspaceExclusion", () => {
  it("lets file tools hold together and bash alone, in arrival order", async () => {
    const x = new WorkspaceExclusion();
    const r1 = track(x, "r1", "shared");
    const r2 = track(x, "r2", "shared");
    await Promise.all([r1.done, r2.done]);
    const w = track(x, "w", "exclusive");
    const r3 = track(x, "r3", "shared");
    // The shared request that came after the waiting bash waits behind it: bash does not starve.
    await vi.waitFor(() => expect(keys(x.state(ws).waiting)).toEqual(["w", "r3"]));
    expect(keys(x.state(ws).held)).toEqual(["r1", "r2"]);
    x.release("r1");
    expect(w.seen.granted).toBe(false);
    x.release("r2");
    await w.done;
    expect(keys(x.state(ws).held)).toEqual(["w"]);
    expect(r3.seen.granted).toBe(false);
    x.release("w");
    await r3.done;
    expect(x.state(ws)).toEqual({ held: [{ key: "r3", mode: "shared" }], waiting: [] });
  });

  it("keeps holds per workspace real path: another spelling meets, another workspace does not", async () => {
    const x = new WorkspaceExclusion();
    await x.acquire({ workspace: join(root, "alias"), mode: "exclusive", key: "w", owner: "t" });
    expect(keys(x.state(ws).held)).toEqual(["w"]);
    await x.acquire({ workspace: other, mode: "exclusive", key: "elsewhere", owner: "t" });
    const r = track(x, "r", "shared", { workspace: `${ws}/` });
    await vi.waitFor(() => expect(keys(x.state(ws).waiting)).toEqual(["r"]));
    x.release("w");
    await r.done;
  });

  it("releases idempotently; asking again with the same key is the same request", async () => {
    const x = new WorkspaceExclusion();
    const first = x.acquire({ workspace: ws, mode: "exclusive", key: "k", owner: "t" });
    const again = x.acquire({ workspace: ws, mode: "exclusive", key: "k", owner: "t" });
    expect(again).toBe(first);
    await first;
    expect(x.release("k")).toBe(true);
    expect(x.release("k")).toBe(false);
    expect(x.release("never")).toBe(false);
    expect(x.state(ws)).toEqual({ held: [], waiting: [] });
  });

  it("ends a task's holds and abandons its waiting requests, and no other task's", async () => {
    const x = new WorkspaceExclusion();
    await x.acquire({ workspace: ws, mode: "exclusive", key: "bash-a", owner: "a" });
    const readA = track(x, "read-a", "shared", { owner: "a" });
    const readB = track(x, "read-b", "shared", { owner: "b" });
    await vi.waitFor(() => expect(keys(x.state(ws).waiting)).toEqual(["read-a", "read-b"]));
    expect(x.releaseOwner("a")).toBe(2);
    await Promise.all([readA.done, readB.done]);
    expect(readA.seen.error).toBeInstanceOf(HoldAbandonedError);
    expect(String(readA.seen.error)).toContain("the task ended");
    expect(readB.seen.granted).toBe(true);
    expect(x.state(ws)).toEqual({ held: [{ key: "read-b", mode: "shared" }], waiting: [] });
  });

  it("abandons a stopped task's waiting requests but keeps its holds until its calls end", async () => {
    const x = new WorkspaceExclusion();
    await x.acquire({ workspace: ws, mode: "exclusive", key: "bash-a", owner: "a" });
    const readA = track(x, "read-a", "shared", { owner: "a" });
    await vi.waitFor(() => expect(keys(x.state(ws).waiting)).toEqual(["read-a"]));
    expect(x.abandonWaiting("a")).toBe(1);
    await readA.done;
    expect(String(readA.seen.error)).toContain("the task was stopped");
    expect(keys(x.state(ws).held)).toEqual(["bash-a"]);
  });

  it("gives up a waiting request whose caller went away, and lets the queue move on", async () => {
    const x = new WorkspaceExclusion();
    await x.acquire({ workspace: ws, mode: "shared", key: "r", owner: "t" });
    const gone = new AbortController();
    const w = track(x, "w", "exclusive", { signal: gone.signal });
    const r2 = track(x, "r2", "shared");
    await vi.waitFor(() => expect(keys(x.state(ws).waiting)).toEqual(["w", "r2"]));
    gone.abort();
    await Promise.all([w.done, r2.done]);
    expect(w.seen.error).toBeInstanceOf(HoldAbandonedError);
    expect(r2.seen.granted).toBe(true);
    // Aborting after the grant changes nothing: the call holds until it ends.
    const late = new AbortController();
    await x.acquire({ workspace: other, mode: "exclusive", key: "o", owner: "t", signal: late.signal });
    late.abort();
    expect(keys(x.state(other).held)).toEqual(["o"]);
  });

  it("abandons everything when the worker stops, and refuses later requests", async () => {
    const x = new WorkspaceExclusion();
    await x.acquire({ workspace: ws, mode: "exclusive", key: "w", owner: "t" });
    const r = track(x, "r", "shared");
    await vi.waitFor(() => expect(keys(x.state(ws).waiting)).toEqual(["r"]));
    x.close();
    await r.done;
    expect(String(r.seen.error)).toContain("the worker is stopping");
    await expect(x.acquire({ workspace: ws, mode: "shared", key: "n", owner: "t" })).rejects.toThrow(
      HoldAbandonedError,
    );
  });
});

describe("WorkspaceExclusion.guard", () => {
  const request = (key: string, owner = "t") => ({ workspace: ws, owner, key });

  it("runs the check inside the hold and keeps the hold only for calls that may run", async () => {
    const x = new WorkspaceExclusion();
    let heldDuringCheck: string[] = [];
    const check = (refusal?: string) => async () => {
      heldDuringCheck = keys(x.state(ws).held);
      return refusal;
    };
    expect(await x.guard("write", request("ok"), check())).toBeUndefined();
    expect(heldDuringCheck).toEqual(["ok"]);
    expect(keys(x.state(ws).held)).toEqual(["ok"]);
    expect(await x.guard("read", request("no"), check("station sandbox: read refused: x"))).toContain(
      "refused",
    );
    expect(heldDuringCheck).toEqual(["ok", "no"]);
    expect(keys(x.state(ws).held)).toEqual(["ok"]);
    await expect(
      x.guard("edit", request("boom"), async () => {
        throw new Error("check failed");
      }),
    ).rejects.toThrow("check failed");
    expect(keys(x.state(ws).held)).toEqual(["ok"]);
    // Tools that touch no workspace path take no hold, whatever holds the workspace.
    x.release("ok");
    await x.acquire({ workspace: ws, mode: "exclusive", key: "bash", owner: "t" });
    expect(await x.guard("task", request("sub"), check())).toBeUndefined();
    expect(await x.guard("webfetch", request("web"), check())).toBeUndefined();
    expect(keys(x.state(ws).held)).toEqual(["bash"]);
  });

  it("turns an abandoned wait into a refusal the agent reads", async () => {
    const x = new WorkspaceExclusion();
    await x.acquire({ workspace: ws, mode: "exclusive", key: "bash", owner: "t" });
    const refusal = x.guard("read", request("r"), async () => undefined);
    await vi.waitFor(() => expect(keys(x.state(ws).waiting)).toEqual(["r"]));
    x.releaseOwner("t");
    expect(await refusal).toBe(
      "station sandbox: read refused: the task ended while this tool call waited for its workspace",
    );
  });
});

describe("WorkspaceExclusion.exclusively", () => {
  it("runs the worker's work once tool calls are done, alone, and lets go even when it throws", async () => {
    const x = new WorkspaceExclusion();
    await x.acquire({ workspace: ws, mode: "shared", key: "read", owner: "t" });
    let during: string[] = [];
    const work = x.exclusively(ws, async () => {
      during = keys(x.state(ws).held);
      return 42;
    });
    await vi.waitFor(() => expect(x.state(ws).waiting).toHaveLength(1));
    x.release("read");
    expect(await work).toBe(42);
    expect(during).toHaveLength(1);
    expect(during[0]).toMatch(/^worker/);
    await expect(
      x.exclusively(ws, async () => {
        throw new Error("git failed");
      }),
    ).rejects.toThrow("git failed");
    expect(x.state(ws)).toEqual({ held: [], waiting: [] });
  });

  it("gives up when its task aborts, or after maxWait, without running the work", async () => {
    const x = new WorkspaceExclusion();
    await x.acquire({ workspace: ws, mode: "exclusive", key: "bash", owner: "t" });
    const cancelled = new AbortController();
    let ran = false;
    const aborted = x.exclusively(ws, async () => void (ran = true), { signal: cancelled.signal });
    await vi.waitFor(() => expect(x.state(ws).waiting).toHaveLength(1));
    cancelled.abort(new Error("task cancelled"));
    await expect(aborted).rejects.toThrow("task cancelled");
    await expect(x.exclusively(ws, async () => void (ran = true), { maxWait: 20 })).rejects.toThrow(
      /stayed busy with tool calls for 20 ms/,
    );
    expect(ran).toBe(false);
    expect(keys(x.state(ws).held)).toEqual(["bash"]);
    expect(x.state(ws).waiting).toEqual([]);
  });
});

describe("toolHoldMode", () => {
  it("holds bash alone, the file tools together, and nothing for tools without paths", () => {
    expect(toolHoldMode("bash")).toBe("exclusive");
    for (const tool of ["read", "write", "edit", "multiedit", "apply_patch", "glob", "grep", "list", "lsp"])
      expect(toolHoldMode(tool), tool).toBe("shared");
    for (const tool of ["task", "webfetch", "todowrite", "question", "skill", "station_kv_get"])
      expect(toolHoldMode(tool), tool).toBeUndefined();
    expect(holdKey("ses_1", "call_1")).not.toBe(holdKey("ses_2", "call_1"));
  });
});
