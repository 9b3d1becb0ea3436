import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { script, startWorker } from "@station-coding/testkit/worker";
import type { DispatcherEnv } from "./support/dispatcher-env.js";
import { collect, startDispatcherEnv } from "./support/dispatcher-env.js";

let env: DispatcherEnv;
beforeEach(async () => {
  env = await startDispatcherEnv("acme");
});
afterEach(async () => {
  await env.close();
});

describe("org namespace", () => {
  it("submits to the org's subjects and follows the task through the org's streams", async () => {
    await startWorker(env, undefined, { orgs: ["acme"] });
    const dispatcher = await env.connect();
    expect(dispatcher.names.taskSubject).toBe("org.acme.coding.task");
    const seen: unknown[] = [];
    env.nc.subscribe("org.acme.coding.task", {
      callback: (_err, msg) => {
        seen.push(msg.json());
      },
    });
    await env.nc.flush();
    const handle = await dispatcher.submit({ taskID: "t1", prompt: script({ text: "hi" }) });
    const events = await collect(handle.events());
    const result = await handle.result();
    expect(result).toMatchObject({ status: "completed", org: "acme" });
    expect(events.map((e) => e.seq)).toEqual(
      Array.from({ length: result.metrics.streamEvents }, (_, i) => i + 1),
    );
    expect(seen[0]).toMatchObject({
      org: "acme",
      callback: { streamSubject: "org.acme.coding.stream.t1", resultSubject: "org.acme.coding.result.t1" },
    });
    const status = await dispatcher.status();
    expect(status.org).toBe("acme");
    expect(status.tasks.stream).toBe("CODING_TASKS_acme");
    await expect(dispatcher.submit({ taskID: "t2", prompt: "x", org: "other" })).rejects.toThrow(
      /org "other": does not match the subject the task was published on \(org\.acme\.coding\.task\)/,
    );
  });
});
