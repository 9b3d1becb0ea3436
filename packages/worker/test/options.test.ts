import { describe, expect, it } from "vitest";
import { MAX_TIMEOUT_MS, ValidationError } from "@station-coding/protocol";
import { resolveWorkerOptions } from "@station-coding/worker";
import { ScriptedDriver } from "@station-coding/testkit/worker";

const driver = new ScriptedDriver();

describe("worker options", () => {
  it("rejects a taskTimeout longer than a Node.js timer can wait, naming the option and the limit", () => {
    expect(resolveWorkerOptions({ driver, taskTimeout: MAX_TIMEOUT_MS }).taskTimeout).toBe(MAX_TIMEOUT_MS);
    let error: unknown;
    try {
      resolveWorkerOptions({ driver, taskTimeout: "25d" });
    } catch (err) {
      error = err;
    }
    expect(error).toBeInstanceOf(ValidationError);
    expect(error).toMatchObject({
      field: "taskTimeout",
      code: "INVALID_CONFIG",
      message:
        "taskTimeout 2160000000ms: must be at most 2147483647ms (about 24.8 days, the longest Node.js timer)",
    });
  });

  it("bounds every timer duration the same way, but not workspaceMaxAge (an age, not a timer)", () => {
    expect(() => resolveWorkerOptions({ driver, ackWait: MAX_TIMEOUT_MS + 1 })).toThrow(/^ackWait /);
    expect(() => resolveWorkerOptions({ driver, git: { cloneTimeout: "30d" } })).toThrow(
      /^git.cloneTimeout /,
    );
    expect(resolveWorkerOptions({ driver, workspaceMaxAge: "90d" }).workspaceMaxAge).toBe(90 * 86_400_000);
  });
});
