import type { Command } from "commander";
import { codingNames, ensureTaskConsumer, ensureTopology } from "@station-coding/protocol";
import { namesFromConfig } from "../config.js";
import type { CommonFlags, Run } from "../context.js";
import { connectionFrom, intFlag } from "../context.js";
import { connectNats } from "../dispatcher-connection.js";

interface InitFlags extends CommonFlags {
  replicas?: string;
}

/** `station-coding init`: creates or checks the streams, buckets and object store. */
export function registerInit(program: Command, run: Run): void {
  program
    .command("init")
    .description("create or check the JetStream topology (streams, KV buckets, object store)")
    .option(
      "--replicas <n>",
      "replicas for a clustered deployment (default 1; checked against existing streams when given)",
    )
    .action((flags: InitFlags, cmd: Command) =>
      run(async () => {
        const all = { ...cmd.optsWithGlobals<CommonFlags>(), ...flags };
        const conn = await connectionFrom(all);
        const orgs = conn.org ? conn.org.split(",").map((o) => o.trim()) : [undefined];
        const replicas = intFlag("--replicas", flags.replicas);
        // One org: replies come on its inbox prefix, which its NATS user may be limited to.
        const inbox = codingNames(orgs.length === 1 && orgs[0] ? { org: orgs[0] } : {}).inboxPrefix;
        const nc = await connectNats(conn, inbox, "one-shot");
        try {
          for (const org of orgs) {
            const names = codingNames({ ...namesFromConfig(conn.config), ...(org ? { org } : {}) });
            const report = await ensureTopology(nc, names, replicas !== undefined ? { replicas } : {});
            await ensureTaskConsumer(nc, names);
            if (all.json) {
              process.stdout.write(`${JSON.stringify({ org: org ?? null, ...report })}\n`);
            } else {
              const label = org ? `org ${org}` : "single-tenant";
              for (const name of report.created) process.stdout.write(`created  ${name}\n`);
              for (const name of report.existing) process.stdout.write(`ok       ${name}\n`);
              process.stdout.write(`topology ready (${label})\n`);
            }
          }
        } finally {
          await nc.close();
        }
      }),
    );
}
