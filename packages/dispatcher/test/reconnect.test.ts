import { afterEach, beforeEach, describe, expect, it } from "vitest";
import type { StreamEvent } from "@station-coding/protocol";
import { eventsOf, script, startWorker } from "@station-coding/testkit/worker";
import type { DispatcherEnv } from "./support/dispatcher-env.js";
import { startDispatcherEnv } from "./support/dispatcher-env.js";

let env: DispatcherEnv;
beforeEach(async () => {
  env = await startDispatcherEnv();
});
afterEach(async () => {
  await env.close();
});

describe("events across a server restart", () => {
  it("keeps following a task's events without gaps or repeats when the server restarts mid-task", async () => {
    await startWorker(env);
    const dispatcher = await env.connect();
    const handle = await dispatcher.submit({
      taskID: "restart",
      prompt: script({ text: "before" }, { sleep: 1500 }, { tool: { name: "bash" } }, { text: "after" }),
    });
    const events: StreamEvent[] = [];
    let restarted = false;
    // A worker may repeat the run after the restart while a lost publish of the first run is retried
    // late (see the report): a long settle lets that straggler arrive.
    for await (const event of handle.events({ settle: "10s" })) {
      events.push(event);
      if (event.type === "prompt_sent" && !restarted) {
        restarted = true;
        await env.server.restart();
      }
    }
    const result = await handle.result();
    expect(restarted).toBe(true);
    expect(result.status).toBe("completed");
    expect(result.result).toBe("beforeafter");
    // A run the worker repeats after the restart continues the seq; every stored event is yielded once.
    const stored = (await eventsOf(env, "restart")).sort((a, b) => a.seq - b.seq);
    expect(events.map((e) => e.seq)).toEqual(stored.map((_, i) => i + 1));
    expect(events).toEqual(stored);
    expect(events.at(-1)?.type).toBe("text");
  });
});
