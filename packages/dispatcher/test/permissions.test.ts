import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { connect } from "@nats-io/transport-node";
import { PermissionDeniedError, codingNames, ensureTopology } from "@station-coding/protocol";
import { NatsServer } from "@station-coding/testkit";
import { CodingDispatcher } from "@station-coding/dispatcher";

// Users that lack one right each; every denied operation must fail fast with a clear error.
const config = `
authorization {
  users: [
    { user: admin, password: admin }
    { user: no-tasks, password: pw, permissions: { publish: { deny: ["station.coding.task"] } } }
    { user: no-results, password: pw, permissions: { subscribe: { deny: ["station.coding.result.>"] } } }
    { user: no-consumers, password: pw, permissions: { publish: { deny: ["$JS.API.CONSUMER.CREATE.CODING_EVENTS.>"] } } }
    { user: no-jetstream, password: pw, permissions: { publish: { deny: ["$JS.API.>"] } } }
  ]
}
`;

let server: NatsServer;
const dispatchers: CodingDispatcher[] = [];

beforeAll(async () => {
  server = await NatsServer.start({ config });
  const nc = await connect({ servers: server.url, user: "admin", pass: "admin" });
  await ensureTopology(nc, codingNames());
  await nc.close();
});
afterAll(async () => {
  await Promise.all(dispatchers.map((d) => d.close()));
  await server.stop();
});

async function as(user: string, options: { ensureTopology?: boolean } = {}): Promise<CodingDispatcher> {
  const dispatcher = await CodingDispatcher.connect({ servers: server.url, user, pass: "pw", ...options });
  dispatchers.push(dispatcher);
  return dispatcher;
}

async function denied(work: Promise<unknown>): Promise<PermissionDeniedError> {
  const started = Date.now();
  const err = await work.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(PermissionDeniedError);
  expect(Date.now() - started).toBeLessThan(3_000);
  return err as PermissionDeniedError;
}

describe("permission errors", () => {
  it("names the task subject when the user may not publish tasks", async () => {
    const dispatcher = await as("no-tasks");
    const err = await denied(dispatcher.submit({ taskID: "t1", prompt: "x" }));
    expect(err.code).toBe("PERMISSION_DENIED");
    expect(err.message).toBe(
      'submitting task t1 (publish to station.coding.task): permission denied to publish to "station.coding.task"; ' +
        "grant the NATS user this right or use other credentials",
    );
  });

  it("names the result subject when the user may not receive results", async () => {
    const dispatcher = await as("no-results");
    const handle = await dispatcher.submit({ taskID: "t2", prompt: "x" });
    const err = await denied(handle.result());
    expect(err.message).toMatch(
      /waiting for the result of task t2: permission denied to subscribe to "station\.coding\.result\.t2"/,
    );
    const again = await denied(dispatcher.task("t2").result({ timeout: "30s" }));
    expect(again.message).toMatch(/station\.coding\.result\.t2/);
  });

  it("names the consumer API subject when the user may not follow events", async () => {
    const dispatcher = await as("no-consumers");
    const handle = await dispatcher.submit({ taskID: "t3", prompt: "x" });
    const iterate = (async () => {
      for await (const _event of handle.events()) {
        // nothing arrives
      }
    })();
    const err = await denied(iterate);
    expect(err.message).toMatch(
      /following the events of task t3: permission denied to publish to "\$JS\.API\.CONSUMER\.CREATE\.CODING_EVENTS\./,
    );
  });

  it("fails connect with the JetStream API subject when the user has no JetStream rights", async () => {
    const err = await denied(as("no-jetstream"));
    expect(err.message).toMatch(/permission/i);
    expect(err.message).toMatch(/\$JS\.API\./);
  });

  it("fails connect clearly when the server refuses the credentials", async () => {
    const err = await denied(CodingDispatcher.connect({ servers: server.url, user: "admin", pass: "wrong" }));
    expect(err.message).toMatch(/the server refused the credentials/);
  });
});
