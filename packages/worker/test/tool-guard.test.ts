// Path decisions follow symbolic links: the tool guard of the sandbox and the permission policy.
import { mkdir, rm, symlink, writeFile } from "node:fs/promises";
import { dirname, join } from "node:path";
import { realpathSync } from "node:fs";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { tempDir } from "@station-coding/testkit";
import {
  NetworkGate,
  checkInside,
  checkToolCall,
  resolveRealPath,
  workspaceOnlyPolicy,
} from "@station-coding/worker/internal";

let ws: string;
let outside: string;
beforeAll(async () => {
  ws = realpathSync(await tempDir("guard-ws"));
  outside = realpathSync(await tempDir("guard-outside"));
  await mkdir(join(ws, "src"));
  await writeFile(join(ws, "src", "a.ts"), "a");
  await symlink(outside, join(ws, "out"));
  await symlink(join(outside, "missing.txt"), join(ws, "dangling"));
  await symlink(join(ws, "src"), join(ws, "inner"));
  await symlink(join(ws, "loop-b"), join(ws, "loop-a"));
  await symlink(join(ws, "loop-a"), join(ws, "loop-b"));
  await symlink(".", join(ws, "self"));
  await symlink(join(ws, "src"), join(outside, "back"));
  await symlink(join(outside, "back"), join(ws, "via"));
  await symlink("src/not-yet.ts", join(ws, "pending"));
});
afterAll(async () => {
  await rm(ws, { recursive: true, force: true });
  await rm(outside, { recursive: true, force: true });
});

describe("real paths", () => {
  it("resolves links on the way and keeps the part that does not exist yet", () => {
    expect(resolveRealPath(ws, "out/new/file.txt")).toEqual({ real: join(outside, "new", "file.txt") });
    expect(resolveRealPath(ws, "inner/b.ts")).toEqual({ real: join(ws, "src", "b.ts") });
    expect(resolveRealPath(ws, `${ws}/src/../src/a.ts`)).toEqual({ real: join(ws, "src", "a.ts") });
  });

  it("refuses a dangling link (writing through it creates its target) and a loop", () => {
    expect(resolveRealPath(ws, "dangling").problem).toContain("symbolic link to a path that does not exist");
    expect(resolveRealPath(ws, "loop-a/x").problem).toContain("loop");
  });

  it("judges inside and outside by where a path really leads", () => {
    expect(checkInside(ws, "src/a.ts")).toBeUndefined();
    expect(checkInside(ws, "inner/new.ts")).toBeUndefined();
    expect(checkInside(ws, "out/x")).toContain(
      `leads to ${join(outside, "x")}, outside the task's workspace`,
    );
    expect(checkInside(ws, "../x")).toContain("is outside the task's workspace");
    expect(checkInside(ws, "/etc/passwd")).toContain("is outside the task's workspace");
  });

  it("climbs `..` from where a link leads, as the kernel does, not from the link's name", () => {
    // Lexically `<ws>/other/x`; the kernel resolves `self` to the workspace, then `..` leaves it.
    expect(checkInside(ws, `${ws}/self/../other/x`)).toContain(`leads to ${join(dirname(ws), "other", "x")}`);
    expect(checkInside(ws, "self/../x")).toContain("outside the task's workspace");
    expect(checkInside(ws, "inner/../src/a.ts")).toBeUndefined();
    expect(checkInside(ws, "self/src/a.ts")).toBeUndefined();
  });

  it("refuses a path that passes outside on its way, even when it comes back in", () => {
    // <ws>/via -> <outside>/back -> <ws>/src: whoever controls <outside> can swap `back` at will.
    expect(checkInside(ws, "via/a.ts")).toContain(`leads to ${join(outside, "back", "a.ts")}`);
    expect(checkInside(ws, `${outside}/../${ws.split("/").pop()}/src/a.ts`)).toContain("is outside");
  });

  it("allows a dangling link that leads inside (writing through it creates a file inside)", () => {
    expect(checkInside(ws, "pending")).toBeUndefined();
    expect(checkInside(ws, "dangling")).toContain(`leads to ${join(outside, "missing.txt")}`);
    expect(checkInside(ws, "loop-a/x")).toContain("too many symbolic links");
  });
});

describe("checkToolCall", () => {
  it("checks every path of the file tools and passes others", async () => {
    expect(await checkToolCall("write", { filePath: join(ws, "out", "x") }, ws, undefined)).toContain(
      "station sandbox: write refused",
    );
    expect(await checkToolCall("read", { filePath: "src/a.ts" }, ws, undefined)).toBeUndefined();
    expect(await checkToolCall("grep", { pattern: "x", path: outside }, ws, undefined)).toContain(
      "grep refused",
    );
    expect(await checkToolCall("glob", { pattern: "**" }, ws, undefined)).toBeUndefined();
    const patch = `*** Begin Patch\n*** Add File: ok.txt\n+x\n*** Update File: out/evil.txt\n*** End Patch`;
    expect(await checkToolCall("apply_patch", { patchText: patch }, ws, undefined)).toContain("out/evil.txt");
    // OpenCode takes the rest of the header line, space or not, and a Move to: line the same way.
    for (const header of ["*** Add File:out/x.txt", "*** Update File: ok.txt\n*** Move to:out/y.txt"]) {
      const text = `*** Begin Patch\r\n${header}\r\n+x\r\n*** End Patch`;
      expect(await checkToolCall("apply_patch", { patchText: text }, ws, undefined), header).toContain(
        "outside the task's workspace",
      );
    }
    expect(await checkToolCall("bash", { command: "echo" }, ws, undefined)).toBeUndefined();
  });

  it("checks webfetch against the network policy", async () => {
    const gate = new NetworkGate("allow");
    expect(await checkToolCall("webfetch", { url: "http://127.0.0.1:4222/" }, ws, gate)).toContain(
      "worker's own host",
    );
    expect(await checkToolCall("webfetch", { url: "file:///etc/passwd" }, ws, gate)).toContain(
      "not an http(s) URL",
    );
    expect(await checkToolCall("websearch", { query: "x" }, ws, gate)).toContain("not available");
  });
});

describe("workspaceOnlyPolicy", () => {
  it("rejects a path inside the workspace that leads out of it through a link", () => {
    const ask = (patterns: string[]) => ({ id: "p", permission: "edit", patterns });
    expect(workspaceOnlyPolicy(ask([join(ws, "src", "*.ts")]), ws).reply).toBe("once");
    expect(workspaceOnlyPolicy(ask([join(ws, "out", "x.txt")]), ws).reply).toBe("reject");
    expect(workspaceOnlyPolicy(ask(["dangling"]), ws).reply).toBe("reject");
  });
});
