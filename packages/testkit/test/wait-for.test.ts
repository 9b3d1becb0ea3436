import { waitFor, WaitForTimeoutError } from "@station-coding/testkit";
import { describe, expect, it } from "vitest";

describe("waitFor", () => {
  it("resolves with the first truthy value", async () => {
    let calls = 0;
    const value = await waitFor(() => (++calls >= 3 ? { calls } : undefined), { interval: 1 });
    expect(value).toEqual({ calls: 3 });
  });

  it("retries while the function throws or rejects", async () => {
    let calls = 0;
    const value = await waitFor(
      async () => {
        calls += 1;
        if (calls < 3) throw new Error("not yet");
        return "done";
      },
      { interval: 1 },
    );
    expect(value).toBe("done");
  });

  it("times out naming what it waited for and the last error", async () => {
    const err = await waitFor(
      () => {
        throw new Error("stream has 2 messages");
      },
      { timeout: 60, interval: 5, message: "stream to have 3 messages" },
    ).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(WaitForTimeoutError);
    const error = err as WaitForTimeoutError;
    expect(error.message).toMatch(/^waitFor timed out after \d+ms waiting for stream to have 3 messages/);
    expect(error.message).toContain("last error: Error: stream has 2 messages");
    expect((error.cause as Error).message).toBe("stream has 2 messages");
    expect(error.attempts).toBeGreaterThan(1);
  });

  it("times out with the last falsy value", async () => {
    await expect(waitFor(() => 0, { timeout: 30, message: "a count" })).rejects.toThrow(
      /waiting for a count \(\d+ attempts; last value: 0\)/,
    );
  });

  it("does not wait past the timeout for an attempt that hangs", async () => {
    const started = performance.now();
    await expect(waitFor(() => new Promise<never>(() => {}), { timeout: 50 })).rejects.toThrow(
      /the last attempt was still pending/,
    );
    expect(performance.now() - started).toBeLessThan(1_000);
  });

  it("stops when its signal aborts", async () => {
    const controller = new AbortController();
    const reason = new Error("test over");
    setTimeout(() => controller.abort(reason), 20);
    await expect(waitFor(() => false, { signal: controller.signal })).rejects.toBe(reason);
  });
});
