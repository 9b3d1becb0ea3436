import { describe, expect, it } from "vitest";
import { codingNames, contextKey, orgFromSubject } from "@station-coding/protocol";

describe("codingNames", () => {
  it("builds the single-tenant names", () => {
    const n = codingNames();
    expect(n.org).toBeUndefined();
    expect(n.taskSubject).toBe("station.coding.task");
    expect(n.streamSubject("t1")).toBe("station.coding.stream.t1");
    expect(n.resultSubject("t1")).toBe("station.coding.result.t1");
    expect(n.cancelSubject("t1")).toBe("station.coding.cancel.t1");
    expect(n.kv.sessions).toBe("coding-sessions");
    expect(n.kv.state).toBe("coding-state");
    expect(n.objectStore).toBe("coding-artifacts");
    expect(n.streams.tasks).toBe("CODING_TASKS");
  });

  it("builds org-namespaced names", () => {
    const n = codingNames({ org: "acme" });
    expect(n.taskSubject).toBe("org.acme.coding.task");
    expect(n.streamSubject("t1")).toBe("org.acme.coding.stream.t1");
    expect(n.resultSubject("t1")).toBe("org.acme.coding.result.t1");
    expect(n.cancelSubject("t1")).toBe("org.acme.coding.cancel.t1");
    expect(n.kv.sessions).toBe("coding-sessions-acme");
    expect(n.kv.state).toBe("coding-state-acme");
    expect(n.objectStore).toBe("coding-artifacts-acme");
    expect(n.streams.tasks).toBe("CODING_TASKS_acme");
    expect(n.inboxPrefix).toBe("_INBOX_acme");
  });

  it("takes overrides for every name, with {org} filled in", () => {
    const n = codingNames({
      org: "acme",
      subjects: { task: "jobs.{org}.task", stream: "jobs.{org}.ev" },
      kv: { sessions: "opencode-sessions" },
      objectStore: "files-{org}",
    });
    expect(n.taskSubject).toBe("jobs.acme.task");
    expect(n.streamSubject("t")).toBe("jobs.acme.ev.t");
    expect(n.kv.sessions).toBe("opencode-sessions");
    expect(n.objectStore).toBe("files-acme");
  });

  it("refuses invalid orgs and taskIDs with the field named", () => {
    expect(() => codingNames({ org: "a.b" })).toThrow('org "a.b": must not contain "."');
    expect(() => codingNames().resultSubject("*")).toThrow(/^taskID "\*"/);
    expect(() => contextKey("agent", "k>")).toThrow(/^key /);
  });

  it("reads the org back from a task subject", () => {
    expect(orgFromSubject("org.acme.coding.task")).toBe("acme");
    expect(orgFromSubject("station.coding.task")).toBeUndefined();
  });
});
