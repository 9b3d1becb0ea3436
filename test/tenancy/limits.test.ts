// Per-org limits, enforced by nats-server on each org's account: an org that fills its JetStream
// storage gets a clear LIMIT_EXCEEDED error naming the limit, every other org goes on untouched,
// and raising the limit with `station-coding org limits … --reload` takes effect live. An org at
// its connection limit gets no more connections; another org does.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { readFile } from "node:fs/promises";
import { jetstreamManager } from "@nats-io/jetstream";
import { connect } from "@nats-io/transport-node";
import { ErrorCodes, LimitExceededError, credentialsAuthenticator } from "@station-coding/protocol";
import { waitFor } from "@station-coding/testkit";
import { script } from "@station-coding/testkit/worker";
import type { TenancyEnv } from "./support/tenancy-env.js";
import { cli, fails, startTenancy } from "./support/tenancy-env.js";

const MiB = 1024 * 1024;
let env: TenancyEnv;

beforeAll(async () => {
  env = await startTenancy({
    orgs: ["acme", "globex", "initech"],
    limits: { acme: { maxStorage: 2 * MiB }, initech: { maxConnections: 5 } },
  });
});
afterAll(async () => {
  await env?.close();
});

describe("per-org limits", () => {
  it("an org that fills its storage gets LIMIT_EXCEEDED naming the limit; other orgs go on; a live raise lets it go on", async () => {
    await env.worker(["acme", "globex"]);
    const acme = await env.dispatcher("acme");
    const globex = await env.dispatcher("globex");
    const chunk = new Uint8Array(256 * 1024).fill(7);
    let staged = 0;
    let full: unknown;
    while (full === undefined && staged < 64) {
      try {
        await acme.artifacts.stage("fill", `part-${staged}.bin`, chunk);
        staged += 1;
      } catch (err) {
        full = err;
      }
    }
    expect(full).toBeInstanceOf(LimitExceededError);
    const error = full as LimitExceededError;
    expect(error).toMatchObject({ code: ErrorCodes.LimitExceeded, retryable: false, limit: "max-storage" });
    expect(error.message).toMatch(/org acme reached its JetStream storage limit/);
    expect(error.message).toContain("station-coding org limits acme --max-storage");
    // About 2 MiB fit; then smaller pieces fill what is left.
    expect(staged).toBeGreaterThanOrEqual(6);
    expect(staged).toBeLessThanOrEqual(8);
    for (const size of [16 * 1024, 1024, 64]) {
      for (let i = 0; ; i += 1) {
        const more = await acme.artifacts.stage("fill", `small-${size}-${i}.bin`, new Uint8Array(size)).then(
          () => undefined,
          (err: unknown) => err,
        );
        if (more !== undefined) {
          expect(more).toBeInstanceOf(LimitExceededError);
          break;
        }
      }
    }
    const usage = await (await jetstreamManager(await env.connectAs("acme", "admin"))).getAccountInfo();
    expect(usage.limits.max_storage).toBe(2 * MiB);
    expect(usage.storage).toBeGreaterThan(1.9 * MiB);
    // Submitting now fails the same clear way, at once.
    const submit = await fails(acme.submit({ taskID: "a-after-full", prompt: script({ text: "x" }) }));
    expect(submit).toMatchObject({ code: ErrorCodes.LimitExceeded });

    // The other org is untouched: it stores more than acme's whole limit and runs tasks.
    for (let i = 0; i < 12; i += 1) await globex.artifacts.stage("big", `part-${i}.bin`, chunk);
    const task = await globex.submit({ taskID: "g-1", prompt: script({ text: "globex runs" }) });
    expect(await task.result()).toMatchObject({ status: "completed", result: "globex runs" });

    // Raising the limit is a reload, live: acme's next submit goes through and runs.
    const raised = await cli([
      "org",
      "limits",
      "acme",
      "--dir",
      env.store.dir,
      "--max-storage",
      "8M",
      "--reload",
    ]);
    expect(raised.code, raised.stderr).toBe(0);
    expect(raised.stdout).toContain("acme: max-storage 8.0 MiB");
    const admin = await jetstreamManager(await env.connectAs("acme", "admin"));
    await waitFor(async () => (await admin.getAccountInfo()).limits.max_storage === 8 * MiB, {
      message: "the reloaded limit",
    });
    const again = await acme.submit({ taskID: "a-after-raise", prompt: script({ text: "acme again" }) });
    expect(await again.result()).toMatchObject({ status: "completed", result: "acme again" });
  });

  it("an org at its connection limit gets no more connections; another org still connects", async () => {
    const auth = async (org: string) =>
      credentialsAuthenticator(await readFile(env.credsFile(org, "viewer")));
    const open = await fetch(`${env.server.monitorUrl}/connz?acc=ORG_initech`).then(
      (r) => r.json() as Promise<{ num_connections: number }>,
    );
    const held = [];
    for (let i = open.num_connections; i < 5; i += 1) {
      held.push(await connect({ servers: env.server.url, authenticator: await auth("initech") }));
    }
    // The sixth is refused (nats.js reports the server's "maximum account active connections
    // exceeded" as a connect timeout).
    const refused = await fails(
      connect({
        servers: env.server.url,
        authenticator: await auth("initech"),
        timeout: 2_000,
        maxReconnectAttempts: 0,
      }),
    );
    expect(refused.message).toMatch(/timeout|maximum account active connections/i);
    expect(env.server.log).toContain("maximum account active connections exceeded");
    const other = await connect({ servers: env.server.url, authenticator: await auth("globex") });
    await other.flush();
    await other.close();
    // Freeing one lets the org connect again.
    await held.pop()?.close();
    const later = await connect({
      servers: env.server.url,
      authenticator: await auth("initech"),
      timeout: 2_000,
    });
    await later.close();
    for (const nc of held) await nc.close();
  });
});
