import { readFile } from "node:fs/promises";
import type { Command } from "commander";
import { Kvm } from "@nats-io/kv";
import type { KV } from "@nats-io/kv";
import { toStationError } from "@station-coding/dispatcher";
import { ErrorCodes, codingNames, storedKeys, validateName } from "@station-coding/protocol";
import type { CodingNames } from "@station-coding/protocol";
import { namesFromConfig } from "../config.js";
import type { CommonFlags, Run } from "../context.js";
import { printDone } from "../output.js";
import { UsageError, connectionFrom } from "../context.js";
import { connectNats } from "../dispatcher-connection.js";

interface SecretFlags extends CommonFlags {
  fromEnv?: string;
  fromFile?: string;
}

/** Runs `fn` with the namespace's secrets bucket; errors name the bucket. */
async function withSecrets<T>(
  flags: CommonFlags,
  fn: (kv: KV, names: CodingNames, nc: Awaited<ReturnType<typeof connectNats>>) => Promise<T>,
): Promise<T> {
  const conn = await connectionFrom(flags);
  if (conn.org?.includes(",")) throw new UsageError(`--org ${JSON.stringify(conn.org)}: name one org`);
  const names = codingNames({ ...namesFromConfig(conn.config), ...(conn.org ? { org: conn.org } : {}) });
  const nc = await connectNats(conn, names.inboxPrefix, "one-shot");
  try {
    const bucket = names.kv.secrets;
    const kv = await new Kvm(nc).open(bucket).catch((err: unknown) => {
      throw toStationError(`opening the secrets bucket ${bucket} (run station-coding init first)`, err);
    });
    return await fn(kv, names, nc);
  } finally {
    await nc.close().catch(() => undefined);
  }
}

/** The secret's value from the one source given; never echoed anywhere. */
async function secretValue(flags: SecretFlags): Promise<string> {
  if ((flags.fromEnv === undefined) === (flags.fromFile === undefined)) {
    throw new UsageError("give the value with exactly one of --from-env <VAR> or --from-file <file>");
  }
  let value: string;
  if (flags.fromEnv !== undefined) {
    const env = process.env[flags.fromEnv];
    if (env === undefined || env.trim() === "")
      throw new UsageError(`--from-env ${flags.fromEnv}: the variable is not set or empty`);
    value = env;
  } else {
    const path = flags.fromFile ?? "";
    value = await readFile(path, "utf8").catch(() => {
      throw new UsageError(`--from-file ${path}: cannot be read`);
    });
  }
  value = value.replace(/\r?\n$/, "");
  if (value.trim() === "") throw new UsageError("the secret is empty");
  return value;
}

/** `station-coding secrets set|ls|rm`: git tokens and other secrets in the namespace's secrets bucket. */
export function registerSecrets(program: Command, run: Run): void {
  const secrets = program
    .command("secrets")
    .description(
      "manage the secrets bucket (coding-secrets, coding-secrets-<org>): git tokens that tasks name with workspace.git.tokenFromKV; values are never printed",
    );
  secrets
    .command("set <name>")
    .description("store a secret under <name> (the value from an environment variable or a file)")
    .option("--from-env <VAR>", "read the value from this environment variable")
    .option("--from-file <file>", "read the value from this file (one trailing newline is dropped)")
    .action((name: string, flags: SecretFlags, cmd: Command) =>
      run(async () => {
        const all = { ...cmd.optsWithGlobals<CommonFlags>(), ...flags };
        validateName("secret name", name);
        const value = await secretValue(flags);
        await withSecrets(all, async (kv, names) => {
          const revision = await kv.put(name, value).catch((err: unknown) => {
            throw toStationError(`storing secret ${name} in bucket ${names.kv.secrets}`, err);
          });
          printDone(
            all.json === true,
            { name, bucket: names.kv.secrets, revision },
            `secret ${name} stored in ${names.kv.secrets} (revision ${revision})`,
          );
        });
      }),
    );
  secrets
    .command("ls")
    .description("list the secrets' names (never their values)")
    .action((_flags: CommonFlags, cmd: Command) =>
      run(async () => {
        const all = cmd.optsWithGlobals<CommonFlags>();
        await withSecrets(all, async (kv, names, nc) => {
          const keys = await storedKeys(nc, names.kv.secrets).catch((err: unknown) => {
            throw toStationError(`listing bucket ${names.kv.secrets}`, err);
          });
          // A deleted secret keeps its key in the stream's index: read each (the value stays here).
          // A user that may write but not read secrets (an org's dispatcher) sees every key.
          const live: string[] = [];
          let readable = true;
          for (const key of keys) {
            if (!readable) {
              live.push(key);
              continue;
            }
            const entry = await kv.get(key).catch((err: unknown) => {
              if (toStationError("", err).code === ErrorCodes.PermissionDenied) return "unreadable" as const;
              throw toStationError(`reading bucket ${names.kv.secrets}`, err);
            });
            if (entry === "unreadable") {
              readable = false;
              live.push(key);
            } else if (entry?.operation === "PUT") live.push(key);
          }
          for (const key of live) {
            process.stdout.write(
              all.json ? `${JSON.stringify({ name: key, bucket: names.kv.secrets })}\n` : `${key}\n`,
            );
          }
          if (!readable && !all.json) {
            process.stderr.write(
              `(this user may not read ${names.kv.secrets}: deleted secrets may be listed too)\n`,
            );
          }
        });
      }),
    );
  secrets
    .command("rm <name>")
    .description("delete a secret")
    .action((name: string, _flags: CommonFlags, cmd: Command) =>
      run(async () => {
        const all = cmd.optsWithGlobals<CommonFlags>();
        validateName("secret name", name);
        await withSecrets(all, async (kv, names) => {
          await kv.delete(name).catch((err: unknown) => {
            throw toStationError(`deleting secret ${name} from bucket ${names.kv.secrets}`, err);
          });
          printDone(
            all.json === true,
            { name, bucket: names.kv.secrets, deleted: true },
            `secret ${name} deleted from ${names.kv.secrets}`,
          );
        });
      }),
    );
}
