// Unit tests of the bounded publishing path: a fake JetStream client (no server) that records each
// publish, refuses on demand, and a fake object store; timers are faked for the retry backoff.
import type { JetStreamClient, PubAck } from "@nats-io/jetstream";
import { errors as natsErrors } from "@nats-io/transport-node";
import type { MsgHdrs } from "@nats-io/transport-node";
import { pino } from "pino";
import { afterEach, describe, expect, it, vi } from "vitest";
import type { ArtifactRef, StreamEvent } from "@station-coding/protocol";
import {
  EventPublisher,
  PayloadTooLargeError,
  SecretRedactor,
  fitJson,
  publishBounded,
} from "@station-coding/worker/internal";

interface Published {
  subject: string;
  data: string;
  msgID: string | undefined;
}

/** A JetStream client whose publish answers with `answer` (throw to refuse). */
function fakeJs(answer: (call: number, data: string) => void = () => undefined) {
  const published: Published[] = [];
  let calls = 0;
  const js = {
    publish: async (subject: string, data: string, opts?: { headers?: MsgHdrs }): Promise<PubAck> => {
      calls += 1;
      answer(calls, data);
      published.push({ subject, data, msgID: opts?.headers?.get("Nats-Msg-Id") });
      return { stream: "EVENTS", seq: published.length, duplicate: false };
    },
  } as unknown as JetStreamClient;
  return { js, published, calls: () => calls };
}

function publisher(
  js: JetStreamClient,
  overrides: Partial<ConstructorParameters<typeof EventPublisher>[0]> = {},
): EventPublisher {
  return new EventPublisher({
    js,
    subject: "station.coding.stream.t1",
    taskID: "t1",
    firstSeq: 1,
    coalesceMs: 0,
    redactor: new SecretRedactor(),
    logger: pino({ level: "silent" }),
    workerID: "w1",
    attempt: 1,
    maxBytes: () => 2_000,
    ...overrides,
  });
}

/** An object store that keeps what it is given. */
function fakeStore(delay = 0) {
  const stored = new Map<string, string>();
  const offload = async (name: string, data: Uint8Array): Promise<ArtifactRef> => {
    if (delay > 0) await new Promise((resolve) => setTimeout(resolve, delay));
    stored.set(name, Buffer.from(data).toString());
    return { bucket: "coding-artifacts", key: `artifacts/t1/${name}`, kind: "event", size: data.byteLength };
  };
  return { stored, offload };
}

const events = (p: Published[]) => p.map((m) => JSON.parse(m.data) as StreamEvent);

afterEach(() => {
  vi.useRealTimers();
});

describe("EventPublisher: bounded size", () => {
  it("publishes an event over the size limit cut to fit, with the whole event in the object store", async () => {
    const { js, published } = fakeJs();
    const store = fakeStore();
    const p = publisher(js, { offload: store.offload });
    const prompt = `start ${"é".repeat(10_000)} end`;
    p.emit({ type: "prompt_sent", content: prompt });
    await p.flush();
    expect(published).toHaveLength(1);
    expect(Buffer.byteLength(published[0]!.data)).toBeLessThanOrEqual(2_000);
    const [event] = events(published);
    expect(event).toMatchObject({
      type: "prompt_sent",
      seq: 1,
      taskID: "t1",
      truncated: true,
      fullEvent: { key: "artifacts/t1/event-1.json", kind: "event" },
    });
    expect(event!.content).toMatch(/^start é+…\[truncated\]$/);
    expect(JSON.parse(store.stored.get("event-1.json")!)).toMatchObject({ seq: 1, content: prompt });
  });

  it("keeps the order of events around an oversized one that is being stored", async () => {
    const { js, published } = fakeJs();
    const p = publisher(js, { offload: fakeStore(50).offload });
    p.emit({ type: "task_started", content: "a" });
    p.emit({ type: "text", content: "x".repeat(5_000) });
    p.emit({ type: "tool_start", tool: { name: "bash", callID: "c1", args: { command: "ls" } } });
    await p.flush();
    expect(events(published).map((e) => [e.seq, e.type])).toEqual([
      [1, "task_started"],
      [2, "text"],
      [3, "tool_start"],
    ]);
  });

  it("falls back to a note when cutting long strings is not enough", async () => {
    const { js, published } = fakeJs();
    const p = publisher(js, { offload: fakeStore().offload });
    const args = Object.fromEntries(Array.from({ length: 500 }, (_, i) => [`key${i}`, "value"]));
    p.emit({ type: "tool_start", tool: { name: "write", callID: "c1", args } });
    await p.flush();
    const [event] = events(published);
    expect(event).toMatchObject({
      type: "tool_start",
      truncated: true,
      fullEvent: { key: "artifacts/t1/event-1.json" },
    });
    expect(event!.content).toMatch(
      /^tool_start event of \d+ bytes is larger than a message may be; stored whole as artifacts\/t1\/event-1.json$/,
    );
    expect(event!.tool).toBeUndefined();
  });

  it("publishes a note when the server refuses an event as too large (a smaller max_payload after a reconnect)", async () => {
    const { js, published } = fakeJs((_call, data) => {
      if (data.length > 500)
        throw natsErrors.InvalidArgumentError.format("payload", "max_payload size exceeded");
    });
    const p = publisher(js);
    p.emit({ type: "text", content: "y".repeat(1_000) });
    await p.flush();
    expect(events(published)).toMatchObject([{ seq: 1, type: "text", truncated: true }]);
    expect(p.dropped).toBe(0);
  });
});

describe("EventPublisher: bounded retries", () => {
  it("gives up at once on a permission error, and flush still returns", async () => {
    // As nats.js reports it for a request (a JetStream publish is one).
    const { js, calls } = fakeJs(() => {
      const message = 'Permissions Violation for Publish to "station.coding.stream.t1"';
      throw new natsErrors.RequestError(message, {
        cause: new natsErrors.PermissionViolationError(message, "publish", "station.coding.stream.t1"),
      });
    });
    const p = publisher(js);
    p.emit({ type: "task_started" });
    await p.flush();
    expect(calls()).toBe(1);
    expect(p.dropped).toBe(1);
    expect(p.acknowledged).toBe(0);
  });

  it("retries an unavailable server with the same Nats-Msg-Id, at most maxAttempts times", async () => {
    vi.useFakeTimers();
    const { js, calls } = fakeJs(() => {
      throw new natsErrors.TimeoutError();
    });
    const p = publisher(js, { maxAttempts: 4 });
    p.emit({ type: "task_started" });
    const flushed = p.flush();
    await vi.advanceTimersByTimeAsync(10_000);
    await flushed;
    expect(calls()).toBe(4);
    expect(p.dropped).toBe(1);
  });

  it("delivers an event once the server answers again", async () => {
    vi.useFakeTimers();
    const { js, published, calls } = fakeJs((call) => {
      if (call < 3) throw new natsErrors.TimeoutError();
    });
    const p = publisher(js);
    p.emit({ type: "task_started" });
    const flushed = p.flush();
    await vi.advanceTimersByTimeAsync(1_000);
    await flushed;
    expect(calls()).toBe(3);
    expect(published.map((m) => m.msgID)).toEqual(["t1:1"]);
    expect(p.acknowledged).toBe(1);
  });
});

describe("publishBounded", () => {
  it("throws PayloadTooLargeError at once, not retryable", async () => {
    const { js, calls } = fakeJs(() => {
      throw natsErrors.InvalidArgumentError.format("payload", "max_payload size exceeded");
    });
    const err = await publishBounded(js, "s", "x".repeat(10), { attempts: 5 }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(PayloadTooLargeError);
    expect(err).toMatchObject({ code: "PAYLOAD_TOO_LARGE", retryable: false });
    expect((err as Error).message).toBe("publish to s: 10 bytes is over the server's max_payload");
    expect(calls()).toBe(1);
  });
});

describe("fitJson", () => {
  it("returns the JSON unchanged when it fits", () => {
    const value = { a: "x".repeat(100) };
    expect(fitJson(value, 1_000, () => ({ a: "marked" }))).toBe(JSON.stringify(value));
  });

  it("cuts the long strings just enough, keeps short ones whole, and marks the cut", () => {
    const value = { id: "i".repeat(200), text: "t".repeat(50_000), other: "o".repeat(30_000) };
    const json = fitJson(value, 20_000, (v) => ({ ...v, cut: true }))!;
    expect(Buffer.byteLength(json)).toBeLessThanOrEqual(20_000);
    expect(Buffer.byteLength(json)).toBeGreaterThan(19_000);
    const parsed = JSON.parse(json) as Record<string, unknown>;
    expect(parsed).toMatchObject({ id: value.id, cut: true });
    expect(parsed.text).toMatch(/^t+…\[truncated\]$/);
  });

  it("counts JSON escapes: control characters take six bytes each", () => {
    const json = fitJson({ text: "\u0001".repeat(10_000) }, 6_000, (v) => v)!;
    expect(Buffer.byteLength(json)).toBeLessThanOrEqual(6_000);
  });

  it("gives up when short strings and arrays alone are too large", () => {
    expect(
      fitJson({ list: Array.from({ length: 1_000 }, (_, i) => `item-${i}`) }, 2_000, (v) => v),
    ).toBeUndefined();
  });
});
