import { Command, CommanderError } from "commander";
import { startTracing } from "@station-coding/telemetry";
import type { Tracing, TracingRole } from "@station-coding/telemetry";
import { registerArtifacts } from "./commands/artifacts.js";
import { registerCancel } from "./commands/cancel.js";
import { registerContext } from "./commands/context.js";
import { registerDlq } from "./commands/dlq.js";
import { registerDemo } from "./commands/demo.js";
import { registerInit } from "./commands/init.js";
import { registerOrg } from "./commands/org.js";
import { registerResult } from "./commands/result.js";
import { registerSecrets } from "./commands/secrets.js";
import { registerServe } from "./commands/serve.js";
import { registerSessions } from "./commands/sessions.js";
import { registerStatus } from "./commands/status.js";
import { registerSubmit } from "./commands/submit.js";
import { registerWatch } from "./commands/watch.js";
import { registerWorker } from "./commands/worker.js";
import type { Run } from "./context.js";
import { describeFailure } from "./context.js";
import { ExitCode } from "./exit-codes.js";

/** CLI version, kept in step with the packages. */
export const CLI_VERSION = "0.1.0";

/** Builds the `station-coding` program. `exit` receives the exit code when a command ends. */
export function buildProgram(exit: (code: number) => void): Command {
  const program = new Command();
  let servers: string | undefined;
  const run: Run = async (fn) => {
    try {
      servers = program.opts<{ natsUrl?: string }>().natsUrl ?? process.env.NATS_URL;
      exit((await fn()) ?? ExitCode.Ok);
    } catch (err) {
      const { line, code } = describeFailure(err, servers);
      process.stderr.write(`${line}\n`);
      exit(code);
    }
  };
  program
    .name("station-coding")
    .description("Hand coding tasks to OpenCode workers over NATS JetStream")
    .version(CLI_VERSION, "-V, --version")
    .option(
      "--nats-url <url>",
      "NATS server URL(s), comma-separated (default: NATS_URL, then nats://127.0.0.1:4222)",
    )
    .option("--creds <file>", "NATS credentials file")
    .option("--user <user>", "NATS user")
    .option("--password <password>", "NATS password (or NATS_PASSWORD)")
    .option("--token <token>", "NATS token (or NATS_TOKEN)")
    .option("--config <file>", "station.yaml configuration")
    .option("--org <org>", "tenant org (org.<org>.coding.* subjects and -<org> buckets)")
    .option("--json", "machine-readable output: one JSON object per line")
    .exitOverride()
    .configureOutput({
      writeErr: (text) => process.stderr.write(text),
      // A parse error is one line (commander's suggestions joined in), with where to look next.
      outputError: (text, write) => write(`${text.trim().replace(/\s*\n\s*/g, " ")} (see --help)\n`),
    })
    .addHelpText(
      "after",
      "\nExit codes: 0 completed/ok, 1 error, 2 usage, 3 task timed out, 4 task cancelled,\n" +
        "5 no result yet (still queued or running), 130 detached by Ctrl-C.\n" +
        "Environment: NATS_URL, NATS_PASSWORD, NATS_TOKEN; LOG_LEVEL=debug logs the client to stderr.",
    );
  registerInit(program, run);
  registerDemo(program, run);
  registerWorker(program, run);
  registerSubmit(program, run);
  registerWatch(program, run);
  registerResult(program, run);
  registerCancel(program, run);
  registerStatus(program, run);
  registerSessions(program, run);
  registerContext(program, run);
  registerArtifacts(program, run);
  registerDlq(program, run);
  registerServe(program, run);
  registerOrg(program, run);
  registerSecrets(program, run);
  return program;
}

/** Runs the CLI with `argv` (process.argv shape). */
export async function main(argv: string[]): Promise<void> {
  let exitCode: number | undefined;
  const program = buildProgram((code) => {
    exitCode = code;
  });
  // Spans leave the process when OTEL_EXPORTER_OTLP_ENDPOINT asks (the SDK is not loaded otherwise).
  let tracing: Tracing | undefined;
  program.hook("preAction", async (_program, action) => {
    tracing = await startTracing(tracingRole(action), {
      onWarning: (message) => process.stderr.write(`station-coding: ${message}\n`),
    });
  });
  try {
    await program.parseAsync(argv);
  } catch (err) {
    if (err instanceof CommanderError) {
      // --help and --version exit 0; every parse error is a usage error.
      process.exitCode = err.exitCode === 0 ? 0 : ExitCode.Usage;
      return;
    }
    throw err;
  } finally {
    await stopTracing(tracing);
  }
  if (exitCode !== undefined) process.exitCode = exitCode;
}

/** The service a command's spans are exported as: the worker, the gateway (`serve`), or the CLI. */
function tracingRole(action: Command): TracingRole {
  let command = action;
  while (command.parent?.parent) command = command.parent;
  return command.name() === "worker" ? "worker" : command.name() === "serve" ? "gateway" : "cli";
}

/** Exports the spans left, for at most a few seconds: an unreachable collector must not hold the exit. */
async function stopTracing(tracing: Tracing | undefined): Promise<void> {
  if (!tracing) return;
  let timer: NodeJS.Timeout | undefined;
  const limit = new Promise<void>((resolve) => (timer = setTimeout(resolve, TRACE_FLUSH_LIMIT)));
  const done = tracing.shutdown().catch((err: unknown) => {
    process.stderr.write(`station-coding: exporting traces to ${tracing.endpoint} failed: ${String(err)}\n`);
  });
  await Promise.race([done, limit]);
  clearTimeout(timer);
}

/** Longest wait for the last spans' export at exit, in ms. */
const TRACE_FLUSH_LIMIT = 3_000;
