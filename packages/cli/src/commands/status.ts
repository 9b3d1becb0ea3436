import type { Command } from "commander";
import { jetstreamManager } from "@nats-io/jetstream";
import { CodingDispatcher } from "@station-coding/dispatcher";
import { codingNames } from "@station-coding/protocol";
import { namesFromConfig } from "../config.js";
import type { CommonFlags, Run } from "../context.js";
import { UsageError, connectionFrom } from "../context.js";
import { connectNats, withDispatcher } from "../dispatcher-connection.js";
import { ExitCode } from "../exit-codes.js";
import { formatBytes, formatStatus } from "../output.js";
import { operatorApiPrefix } from "../tenancy/accounts-config.js";

interface StatusFlags extends CommonFlags {
  allOrgs?: boolean;
}

/**
 * Every org's status through the operator account, which imports each org's read-only status API
 * subjects under `$JS.<org>.API` (see `station-coding org`). One failing org does not hide the rest.
 */
async function allOrgsStatus(flags: StatusFlags): Promise<number> {
  const conn = await connectionFrom(flags);
  const orgs = conn.org ? conn.org.split(",").map((o) => o.trim()) : conn.config?.coding.orgs;
  if (!orgs || orgs.length === 0) {
    throw new UsageError(
      "--all-orgs: name the orgs with --org a,b or coding.orgs in --config (the operator.yaml of station-coding org)",
    );
  }
  for (const org of orgs) codingNames({ org });
  const nc = await connectNats(conn, "_INBOX", "one-shot");
  let failed = false;
  try {
    for (const org of orgs) {
      const apiPrefix = operatorApiPrefix(org);
      try {
        const dispatcher = await CodingDispatcher.connect({
          connection: nc,
          org,
          names: namesFromConfig(conn.config),
          ensureTopology: false,
          jetstreamApiPrefix: apiPrefix,
          requestTimeout: "5s",
        });
        const status = await dispatcher.status();
        await dispatcher.close();
        const account = await (await jetstreamManager(nc, { apiPrefix, timeout: 5_000 })).getAccountInfo();
        const usage = {
          storage: account.storage,
          memory: account.memory,
          streams: account.streams,
          consumers: account.consumers,
          limits: account.limits,
        };
        if (flags.json) {
          process.stdout.write(`${JSON.stringify({ ...status, account: usage })}\n`);
        } else {
          const limit = (n: number) => (n < 0 ? "no limit" : formatBytes(n));
          process.stdout.write(
            `== org ${org}: storage ${formatBytes(usage.storage)} of ${limit(usage.limits.max_storage)}, ` +
              `${usage.streams} of ${usage.limits.max_streams} streams, ${usage.consumers} of ${usage.limits.max_consumers} consumers\n` +
              `${formatStatus(status)}\n`,
          );
        }
      } catch (err) {
        failed = true;
        const message = err instanceof Error ? err.message : String(err);
        if (flags.json) process.stdout.write(`${JSON.stringify({ org, error: message })}\n`);
        else process.stdout.write(`== org ${org}: error: ${message}\n`);
      }
    }
  } finally {
    await nc.close().catch(() => undefined);
  }
  return failed ? ExitCode.Error : ExitCode.Ok;
}

/** `station-coding status`: queue depth, consumer counters, workers and dead letters. */
export function registerStatus(program: Command, run: Run): void {
  program
    .command("status")
    .description("show queue depth, pending and in-flight tasks, workers with their load, dead letters")
    .option(
      "--all-orgs",
      "every org's status and storage, read-only through the operator account (orgs from --org a,b or coding.orgs)",
    )
    .action((flags: StatusFlags, cmd: Command) =>
      run(async () => {
        const all = { ...cmd.optsWithGlobals<CommonFlags>(), ...flags };
        if (all.allOrgs) return allOrgsStatus(all);
        await withDispatcher(all, "one-shot", async ({ dispatcher }) => {
          const status = await dispatcher.status();
          process.stdout.write(`${all.json === true ? JSON.stringify(status) : formatStatus(status)}\n`);
        });
      }),
    );
}
