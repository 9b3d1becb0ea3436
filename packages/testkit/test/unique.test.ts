import { rm, stat } from "node:fs/promises";
import { basename } from "node:path";

import { tempDir, uniqueName } from "@station-coding/testkit";
import { describe, expect, it } from "vitest";

describe("uniqueName", () => {
  it("returns distinct names made of [A-Za-z0-9_-] that start with the prefix", () => {
    const names = Array.from({ length: 1000 }, () => uniqueName("tasks"));
    expect(new Set(names).size).toBe(names.length);
    for (const name of names) expect(name).toMatch(/^tasks-[A-Za-z0-9_-]+$/);
  });

  it("replaces characters that are not safe in stream names, subjects and paths", () => {
    expect(uniqueName("org.a/b *>")).toMatch(/^org_a_b___-[A-Za-z0-9_-]+$/);
    expect(uniqueName("")).toMatch(/^x-/);
  });
});

describe("tempDir", () => {
  it("creates a new empty directory named after the prefix", async () => {
    const [a, b] = await Promise.all([tempDir("work/space"), tempDir("work/space")]);
    try {
      expect(a).not.toBe(b);
      expect((await stat(a)).isDirectory()).toBe(true);
      expect(basename(a)).toMatch(/^work_space-/);
    } finally {
      await rm(a, { recursive: true, force: true });
      await rm(b, { recursive: true, force: true });
    }
  });
});
