import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { ErrorCodes, StationError, ValidationError, artifactKey, patchKey } from "@station-coding/protocol";
import { Objm } from "@nats-io/obj";
import { waitFor } from "@station-coding/testkit";
import { script, startWorker } from "@station-coding/testkit/worker";
import type { DispatcherEnv } from "./support/dispatcher-env.js";
import { startDispatcherEnv } from "./support/dispatcher-env.js";

let env: DispatcherEnv;
beforeEach(async () => {
  env = await startDispatcherEnv();
});
afterEach(async () => {
  await env.close();
});

describe("sessions", () => {
  it("lists, reads and deletes the sessions tasks created", async () => {
    await startWorker(env);
    const dispatcher = await env.connect();
    const handle = await dispatcher.code({ session: "s1", prompt: script({ text: "hi" }) });
    expect(handle.taskID).toMatch(/^code-[0-9a-f-]{36}$/);
    const result = await handle.result();
    const session = await dispatcher.sessions.get("s1");
    expect(session).toMatchObject({
      sessionName: "s1",
      opencodeID: result.session.opencodeID,
      messageCount: 1,
    });
    expect((await dispatcher.sessions.list()).map((s) => s.sessionName)).toEqual(["s1"]);
    await dispatcher.sessions.delete("s1");
    expect(await dispatcher.sessions.get("s1")).toBeUndefined();
    expect(await dispatcher.sessions.list()).toEqual([]);
    await expect(dispatcher.sessions.get("../s1")).rejects.toBeInstanceOf(ValidationError);
  });
});

describe("agent context", () => {
  it("stores, lists and deletes values per agent", async () => {
    const dispatcher = await env.connect();
    await dispatcher.context.set("agent-1", "plan", { steps: ["a", "b"] });
    await dispatcher.context.set("agent-1", "notes", "text");
    await dispatcher.context.set("agent-2", "plan", 42);
    expect((await dispatcher.context.get("agent-1", "plan"))?.value).toEqual({ steps: ["a", "b"] });
    expect((await dispatcher.context.list("agent-1")).map((c) => c.key).sort()).toEqual(["notes", "plan"]);
    expect(await dispatcher.context.list()).toHaveLength(3);
    await dispatcher.context.delete("agent-1", "plan");
    expect(await dispatcher.context.get("agent-1", "plan")).toBeUndefined();
    await expect(dispatcher.context.set("agent.1", "k", 1)).rejects.toThrow(
      /agentID "agent\.1": must not contain "\."/,
    );
  });

  it("forgets a value once its time to live has passed", async () => {
    const dispatcher = await env.connect();
    const stored = await dispatcher.context.set("agent-1", "short", "soon gone", { ttl: 200 });
    expect(stored.ttl).toBe(200);
    expect((await dispatcher.context.get("agent-1", "short"))?.value).toBe("soon gone");
    await waitFor(async () => (await dispatcher.context.get("agent-1", "short")) === undefined, {
      message: "the context entry to expire",
    });
    expect(await dispatcher.context.list("agent-1")).toEqual([]);
  });
});

describe("artifacts", () => {
  it("stages inputs, lists a task's objects, reads and deletes them", async () => {
    const dispatcher = await env.connect();
    const text = await dispatcher.artifacts.stage("t1", "notes.md", "# notes");
    expect(text).toMatchObject({
      bucket: "coding-artifacts",
      key: "input/t1/notes.md",
      kind: "input",
      size: 7,
    });
    expect(text.digest).toMatch(/^SHA-256=/);
    const bytes = new Uint8Array(300_000).map((_, i) => i % 251);
    await dispatcher.artifacts.stage("t1", "data.bin", bytes);
    // What a worker writes for the task, and another task's file.
    const os = await new Objm(env.nc).open(env.names.objectStore);
    await os.putBlob({ name: patchKey("t1") }, new TextEncoder().encode("diff"));
    await os.putBlob({ name: artifactKey("t1", "out.txt") }, new TextEncoder().encode("out"));
    await os.putBlob({ name: artifactKey("t10", "other.txt") }, new TextEncoder().encode("not t1's"));

    const listed = await dispatcher.artifacts.list("t1");
    expect(listed.map((a) => [a.key, a.kind])).toEqual([
      ["artifacts/t1/out.txt", "artifact"],
      ["input/t1/data.bin", "input"],
      ["input/t1/notes.md", "input"],
      ["output/t1/changes.patch", "patch"],
    ]);
    const same = (a: Uint8Array) => Buffer.from(a).equals(Buffer.from(bytes));
    expect(same(await dispatcher.artifacts.get("input/t1/data.bin"))).toBe(true);
    expect(new TextDecoder().decode(await dispatcher.artifacts.get("input/t1/notes.md"))).toBe("# notes");
    const chunks: Uint8Array[] = [];
    for await (const chunk of await dispatcher.artifacts.stream("input/t1/data.bin")) chunks.push(chunk);
    expect(same(Buffer.concat(chunks))).toBe(true);

    expect(await dispatcher.artifacts.delete("t1")).toBe(4);
    expect(await dispatcher.artifacts.list("t1")).toEqual([]);
    expect(await dispatcher.artifacts.list("t10")).toHaveLength(1);
    const missing = await dispatcher.artifacts.get("input/t1/notes.md").catch((e: unknown) => e);
    expect(missing).toBeInstanceOf(StationError);
    expect((missing as StationError).code).toBe(ErrorCodes.ArtifactError);
    expect((missing as Error).message).toBe(
      'artifact "input/t1/notes.md": not found in object store coding-artifacts',
    );
  });

  it("refuses bad file names and files over the size limit", async () => {
    const dispatcher = await env.connect({ maxArtifactBytes: 1024 });
    await expect(dispatcher.artifacts.stage("t1", "../etc/passwd", "x")).rejects.toThrow(
      /fileName "\.\.\/etc\/passwd": must not contain "\.\."/,
    );
    await expect(dispatcher.artifacts.stage("t1", ".hidden", "x")).rejects.toThrow(
      /must not start with "\."/,
    );
    const big = await dispatcher.artifacts
      .stage("t1", "big.bin", new Uint8Array(1025))
      .catch((e: unknown) => e);
    expect(big).toBeInstanceOf(ValidationError);
    expect((big as Error).message).toBe(
      "artifact input/t1/big.bin: 1025 bytes is over the limit of 1024 bytes (option maxArtifactBytes)",
    );
    expect(await dispatcher.artifacts.list("t1")).toEqual([]);
  });
});
