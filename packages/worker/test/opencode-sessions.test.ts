import { execFile } from "node:child_process";
import { promisify } from "node:util";
import { Objm } from "@nats-io/obj";
import { sessionExportKey } from "@station-coding/protocol";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { Scenario } from "@station-coding/testkit";
import type { Env } from "@station-coding/testkit/worker";
import {
  eventsOf,
  publishTask,
  startEnv,
  startOpenCode,
  startWorker,
  waitResult,
} from "@station-coding/testkit/worker";

const scenarios: Scenario[] = [
  { name: "remember", match: "remember the word", steps: [{ text: "I will remember kiwi." }] },
  { name: "recall", match: "what was the word", steps: [{ text: "The word was kiwi." }] },
];

interface SessionExport {
  info: { id: string; title: string; directory: string };
  messages: {
    info: { id: string; role: string };
    parts: { id: string; type: string; text?: string; tool?: string }[];
  }[];
}

/** What an export must carry for `opencode import` to restore the conversation. */
function exportShape(e: SessionExport) {
  return {
    info: { id: e.info.id, title: e.info.title, directory: e.info.directory },
    messages: e.messages.map((m) => ({
      id: m.info.id,
      role: m.info.role,
      parts: m.parts.map((p) => ({ id: p.id, type: p.type, text: p.text, tool: p.tool })),
    })),
  };
}

let env: Env;
let first: Awaited<ReturnType<typeof startOpenCode>>;
let second: Awaited<ReturnType<typeof startOpenCode>>;

beforeAll(async () => {
  env = await startEnv();
  // Two workers, each with its own OpenCode and its own private storage.
  first = await startOpenCode(scenarios, { workspaceRoot: env.workspaceDir });
  second = await startOpenCode(scenarios, { workspaceRoot: env.workspaceDir });
}, 60_000);
afterAll(async () => {
  await env?.close();
  await first?.close();
  await second?.close();
});

describe("sessions outlive workers", () => {
  it("continues a session on another worker's OpenCode with its conversation restored", async () => {
    const workerA = await startWorker(env, first.driver);
    await publishTask(env, { taskID: "w-1", session: { name: "travel" }, prompt: "remember the word kiwi" });
    const one = await waitResult(env, "w-1", 60_000);
    expect(one.status).toBe("completed");
    // The export the worker stored (read over OpenCode's HTTP API) is what `opencode export` prints.
    const store = await new Objm(env.nc).open(env.names.objectStore);
    const stored = await store.getBlob(sessionExportKey("travel"));
    const server = first.driver.managedServer!;
    const { stdout } = await promisify(execFile)(server.binary, ["export", one.session.opencodeID], {
      env: server.processEnv,
      cwd: one.workspace.path,
      maxBuffer: 64 * 1024 * 1024,
    });
    // Same session, same messages with the same parts and text. (Fields OpenCode may update after
    // the turn, such as timestamps and diff summaries, are left out of the comparison.)
    expect(exportShape(JSON.parse(new TextDecoder().decode(stored)) as SessionExport)).toEqual(
      exportShape(JSON.parse(stdout.slice(stdout.indexOf("{"))) as SessionExport),
    );
    await workerA.stop();

    await startWorker(env, second.driver);
    await publishTask(env, { taskID: "w-2", session: { name: "travel" }, prompt: "what was the word?" });
    const two = await waitResult(env, "w-2", 60_000);
    expect(two.status, JSON.stringify(two)).toBe("completed");
    const events = await eventsOf(env, "w-2");
    // The second OpenCode never saw the session: the worker restored it from the export.
    expect(two.session.restored).toBe(true);
    expect(two.session.opencodeID).toBe(one.session.opencodeID);
    expect(two.session.messageCount).toBe(2);
    expect(events.some((e) => e.type === "session_restored")).toBe(true);
    const recall = second.model.scenarioCalls.find((c) => c.scenario === "recall");
    const transcript = JSON.stringify(recall?.body.messages);
    expect(transcript).toContain("remember the word kiwi");
    expect(transcript).toContain("I will remember kiwi.");
  }, 120_000);

  it("starts a new session and says so when the conversation cannot be restored", async () => {
    // A session whose export is gone (e.g. aged out of the object store).
    const { SessionStore } = await import("@station-coding/protocol");
    const sessions = await SessionStore.open(env.nc, env.names);
    await sessions.update("lost", () => ({
      sessionName: "lost",
      opencodeID: "ses_doesnotexistanywhere",
      workspaceName: "lost",
      workspacePath: "/nowhere",
      created: new Date().toISOString(),
      lastUsed: new Date().toISOString(),
      messageCount: 3,
      exportKey: "sessions/lost/opencode-export.json",
    }));
    await publishTask(env, { taskID: "w-3", session: { name: "lost" }, prompt: "remember the word fig" });
    const result = await waitResult(env, "w-3", 60_000);
    expect(result.status).toBe("completed");
    expect(result.session.replaced).toBe(true);
    expect(result.session.opencodeID).not.toBe("ses_doesnotexistanywhere");
    const created = (await eventsOf(env, "w-3")).find((e) => e.type === "session_created");
    expect(created?.content).toContain("a new session began");
  }, 90_000);
});
