// A dead letter holds the whole task message; one that would not fit in a message (the server's
// max_payload, 1 MiB here) keeps the task in the object store, and a replay reads it from there.
import { jetstreamManager } from "@nats-io/jetstream";
import { Objm } from "@nats-io/obj";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import type { CodingDispatcher } from "@station-coding/dispatcher";
import { deadLetterPayloadKey } from "@station-coding/protocol";
import { ScriptedDriver, startWorker } from "@station-coding/testkit/worker";
import type { DispatcherEnv } from "./support/dispatcher-env.js";
import { startDispatcherEnv, until } from "./support/dispatcher-env.js";

let env: DispatcherEnv;
let driver: ScriptedDriver;
let dispatcher: CodingDispatcher;

beforeEach(async () => {
  env = await startDispatcherEnv();
  driver = new ScriptedDriver();
  await startWorker(env, driver, { maxAttempts: 1 });
  dispatcher = await env.connect();
});
afterEach(async () => {
  await env.close();
});

/**
 * Fails retryably once (dead-lettered after its one attempt), then succeeds. The quotes of the
 * padding are escaped once in the script, again in the task and again in the dead letter: about
 * 0.8 MB of task message, 1.6 MB of dead letter.
 */
const bigFlaky = () =>
  JSON.stringify({
    steps: [{ fail: { message: "provider overloaded", retryable: true }, times: 1 }, { text: "fine now" }],
    padding: '"'.repeat(200_000),
  });

describe("dead letters larger than a message", () => {
  it("keep the task message in the object store, and replay it from there", async () => {
    const handle = await dispatcher.submit({ taskID: "big", prompt: bigFlaky() });
    expect((await handle.result()).status).toBe("error");
    const letter = await until(
      async () => (await dispatcher.deadLetters.list()).find((l) => l.taskID === "big"),
      "the dead letter of big",
    );
    const key = deadLetterPayloadKey("big");
    expect(letter).toMatchObject({
      payload: "",
      payloadRef: { bucket: env.names.objectStore, key, kind: "dead-letter-payload" },
      errorCode: "AGENT_ERROR",
    });
    const store = await new Objm(env.nc).open(env.names.objectStore);
    const stored = new TextDecoder().decode(await store.getBlob(key));
    expect(JSON.parse(stored)).toMatchObject({ taskID: "big", prompt: bigFlaky() });
    expect(letter.payloadRef!.size).toBe(Buffer.byteLength(stored));

    await dispatcher.deadLetters.replay("big");
    const replayed = await until(async () => {
      const result = await dispatcher
        .task("big")
        .result({ timeout: 100 })
        .catch(() => undefined);
      return result?.status === "completed" ? result : undefined;
    }, "the replay's result");
    expect(replayed.result).toBe("fine now");
    expect(driver.calls).toHaveLength(2);
    expect(await dispatcher.deadLetters.list()).toEqual([]);
    expect(await store.getBlob(key)).toBeNull();
  });

  it("refuse a replay whose stored task message is gone, changing nothing", async () => {
    await dispatcher.submit({ taskID: "gone", prompt: bigFlaky() });
    await until(
      async () => (await dispatcher.deadLetters.list()).find((l) => l.taskID === "gone"),
      "the dead letter of gone",
    );
    const store = await new Objm(env.nc).open(env.names.objectStore);
    await store.delete(deadLetterPayloadKey("gone"));
    await expect(dispatcher.deadLetters.replay("gone")).rejects.toThrow(
      `dead letter for task gone: its task message is not in ${env.names.objectStore} at dlq/gone/task.json any more; it cannot be replayed`,
    );
    const jsm = await jetstreamManager(env.nc);
    expect((await jsm.streams.info(env.names.streams.dlq)).state.messages).toBe(1);
    expect(driver.calls).toHaveLength(1);
  });
});
