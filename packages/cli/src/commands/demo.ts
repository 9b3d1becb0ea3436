import { randomBytes } from "node:crypto";
import { rmSync } from "node:fs";
import { mkdir, mkdtemp, readFile, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { Command } from "commander";
import { AuthorizationError, connect } from "@nats-io/transport-node";
import type { NatsConnection } from "@nats-io/transport-node";
import { CodingDispatcher } from "@station-coding/dispatcher";
import type { TaskHandle } from "@station-coding/dispatcher";
import type { TaskResult } from "@station-coding/protocol";
import {
  ErrorCodes,
  StationError,
  codingNames,
  natsConnectOptions,
  patchKey,
} from "@station-coding/protocol";
import { CodingWorker, OpenCodeDriver, SecretRedactor, createLogger } from "@station-coding/worker";
import { pino } from "pino";
import { namesFromConfig } from "../config.js";
import type { CommonFlags, Connection, Run } from "../context.js";
import { connectionFrom } from "../context.js";
import { credentialsRefused } from "../dispatcher-connection.js";
import { Cleanup } from "../demo/cleanup.js";
import { createSampleRepo } from "../demo/sample-repo.js";
import { ExitCode } from "../exit-codes.js";
import { exitCodeFor, formatEvent, formatResult } from "../output.js";

interface DemoFlags extends CommonFlags {
  offline?: boolean;
}

/** How long the demo waits for a NATS server given by NATS_URL or --nats-url to answer. */
const PROBE_TIMEOUT_MS = 2_000;
/** Org the demo uses on a NATS server it did not start, so that it takes no one else's tasks. */
const DEMO_ORG = "demo";
/** Time limit of the demo task with the scripted model, and with a real provider. */
const OFFLINE_TASK_TIMEOUT_MS = 2 * 60_000;
const PROVIDER_TASK_TIMEOUT_MS = 10 * 60_000;

const out = (line = ""): void => void process.stdout.write(`${line}\n`);
const row = (label: string, value: string): void => out(`  ${label.padEnd(11)}${value}`);

/** The provider key variable that is set, if any: with one the demo uses the real provider. */
function providerKey(): string | undefined {
  if (process.env.ANTHROPIC_API_KEY?.trim()) return "ANTHROPIC_API_KEY";
  if (process.env.OPENAI_API_KEY?.trim()) return "OPENAI_API_KEY";
  return undefined;
}

/**
 * Connects to the NATS server the user named, giving up quickly: the reason when it cannot be
 * reached. A server that refuses the credentials is an error, not a reason to start another one.
 */
async function reachNats(
  conn: Connection,
  inboxPrefix: string,
): Promise<{ nc: NatsConnection } | { reason: string }> {
  try {
    const nc = await connect(
      natsConnectOptions({
        servers: conn.servers,
        name: "station-coding-demo",
        inboxPrefix,
        timeout: PROBE_TIMEOUT_MS,
        creds: conn.creds !== undefined ? await readFile(conn.creds) : undefined,
        credsLabel: `--creds ${conn.creds}`,
        user: conn.user,
        pass: conn.pass,
        token: conn.token,
      }),
    );
    return { nc };
  } catch (err) {
    if (err instanceof AuthorizationError) throw credentialsRefused(conn.servers, err);
    return { reason: err instanceof Error ? err.message : String(err) };
  }
}

/** Prints the task's events as they arrive, then returns its result; `signal` stops both waits. */
async function followDemoTask(handle: TaskHandle, timeout: number, signal: AbortSignal): Promise<TaskResult> {
  for await (const event of handle.events({ signal })) out(formatEvent(event));
  return handle.result({ timeout, signal });
}

/** The task's patch from the object store, or undefined when the worker stored none. */
async function readPatch(dispatcher: CodingDispatcher, taskID: string): Promise<string | undefined> {
  try {
    return new TextDecoder().decode(await dispatcher.artifacts.get(patchKey(taskID)));
  } catch (err) {
    if (err instanceof StationError && err.code === ErrorCodes.ArtifactError) return undefined;
    throw err;
  }
}

/**
 * Runs the demo and returns its exit code. Everything it starts is registered with `cleanup`, which
 * the caller runs afterwards; when `interrupt` fires (Ctrl-C) it stops at the next step or wait.
 */
async function runDemo(flags: DemoFlags, cleanup: Cleanup, interrupt: AbortSignal): Promise<number> {
  // The testkit (a private nats-server, the scripted model and its demo scenario) is loaded here,
  // when the demo runs, and by no other command: submit, worker and the rest never load it.
  const { DEMO_PROMPT, NatsServer, ScriptedModelServer, demoRepoScenario, scriptedProviderConfig } =
    await import("@station-coding/testkit");
  const conn = await connectionFrom(flags);
  const nameOverrides = namesFromConfig(conn.config);
  const userNamedServer =
    flags.natsUrl !== undefined || conn.config?.coding.nats?.url !== undefined || !!process.env.NATS_URL;

  out("station-coding demo: one coding task end to end on this machine");
  const tmp = await mkdtemp(join(tmpdir(), "station-demo-"));
  cleanup.defer(`removing ${tmp}`, () => rm(tmp, { recursive: true, force: true }), {
    force: () => rmSync(tmp, { recursive: true, force: true }),
  });

  // NATS: the server the user named when it answers, else a private nats-server with a temp store.
  let servers = conn.servers;
  let org = conn.org;
  let nc: NatsConnection | undefined;
  if (userNamedServer) {
    // On a server others may use, work in an org of its own: no other worker takes the demo's
    // task, and the demo's worker takes no one else's.
    org ??= DEMO_ORG;
    const reached = await reachNats(conn, codingNames({ ...nameOverrides, org }).inboxPrefix);
    if ("nc" in reached) {
      nc = reached.nc;
      row("nats", `${servers} (reachable; the demo works in org ${org} there)`);
    } else {
      row("nats", `${servers} is not reachable (${reached.reason}): starting nats-server`);
      org = conn.org;
    }
  }
  let natsAuth: Connection = conn;
  const ownServer = nc === undefined;
  if (!nc) {
    const server = await NatsServer.start({ docker: false });
    cleanup.defer("stopping nats-server", () => server.stop());
    servers = server.url;
    natsAuth = { servers };
    nc = await connect(natsConnectOptions({ servers, name: "station-coding-demo" }));
    row("nats", `started nats-server at ${servers} (temp store)`);
  }
  interrupt.throwIfAborted();
  const ownConnection = nc;
  cleanup.defer("closing the NATS connection", () => ownConnection.close());
  const dispatcher = await CodingDispatcher.connect({
    connection: nc,
    names: nameOverrides,
    ...(org !== undefined ? { org } : {}),
    name: "station-coding-demo",
  });
  cleanup.defer("closing the dispatcher", () => dispatcher.close());

  // The model: a real provider when a key is set, else the scripted offline model.
  const key = providerKey();
  let opencodeConfig: Record<string, unknown> | undefined;
  if (key === undefined || flags.offline === true) {
    const model = await ScriptedModelServer.start({ scenarios: [demoRepoScenario()] });
    cleanup.defer("stopping the scripted model server", () => model.stop());
    opencodeConfig = scriptedProviderConfig(model.url);
    const why = key === undefined ? "no provider key found" : `--offline (${key} is not used)`;
    row("model", `${why}: using the scripted offline model at ${model.url}`);
  } else {
    row("model", `${key} is set: OpenCode uses the real provider (this task costs tokens)`);
  }
  interrupt.throwIfAborted();

  const repo = await createSampleRepo(join(tmp, "sample"));
  row("repository", `${repo.path} (a sample package, one commit ${repo.commit.slice(0, 12)})`);

  const redactor = new SecretRedactor().addFromEnv();
  const level = process.env.LOG_LEVEL ?? "warn";
  // Log lines go to stderr, until an interrupt: then they only tell of the teardown under way.
  const stderr = pino.destination({ dest: 2, sync: true });
  const logDestination = { write: (line: string) => void (interrupt.aborted || stderr.write(line)) };
  // OpenCode's runtime unpacks a native library into TMPDIR at every start and never removes it:
  // give it a TMPDIR inside the demo's temp dir, which goes at the end.
  const opencodeTmp = join(tmp, "opencode-tmp");
  await mkdir(opencodeTmp);
  const workspaceDir = join(tmp, "workspaces");
  await mkdir(workspaceDir);
  const driver = await OpenCodeDriver.start({
    workspaceRoot: workspaceDir,
    server: { env: { TMPDIR: opencodeTmp }, ...(opencodeConfig ? { config: opencodeConfig } : {}) },
    logger: createLogger(redactor, { name: "station-coding-opencode", level, destination: logDestination }),
  });
  // OpenCode shares the demo's process group, so a Ctrl-C reaches it too and its supervisor starts
  // it again: on an interrupt give the graceful stop little time before killing it.
  cleanup.defer("stopping OpenCode", () => driver.close(), {
    timeout: () => (interrupt.aborted ? 3_000 : 10_000),
    force: () => {
      const server = driver.managedServer;
      if (!server) return;
      try {
        if (server.pid !== undefined) process.kill(server.pid, "SIGKILL");
      } catch {
        // Already gone.
      }
      rmSync(server.dataDir, { recursive: true, force: true });
    },
  });
  interrupt.throwIfAborted();
  const worker = await CodingWorker.start({
    driver,
    servers,
    ...(natsAuth.creds !== undefined ? { creds: natsAuth.creds } : {}),
    ...(natsAuth.user !== undefined ? { user: natsAuth.user } : {}),
    ...(natsAuth.pass !== undefined ? { pass: natsAuth.pass } : {}),
    ...(natsAuth.token !== undefined ? { token: natsAuth.token } : {}),
    ...(org !== undefined ? { orgs: [org] } : {}),
    names: nameOverrides,
    workerID: `demo-${randomBytes(3).toString("hex")}`,
    concurrency: 1,
    workspaceDir,
    // The sample repository is a local directory, cloned through its file:// URL.
    git: { allowLocalRepos: true },
    shutdownGrace: 3_000,
    // Stopping waits for the pull in progress: keep it short.
    pullExpires: 1_000,
    logLevel: level,
    logDestination,
  });
  cleanup.defer(
    "stopping the worker",
    async () => {
      // A nats-server the demo started dies with its Ctrl-C (the testkit's reaper kills it at
      // once): the worker cannot drain through it, so let it wind down without waiting for it.
      if (ownServer && interrupt.aborted) void worker.stop().catch(() => undefined);
      else await worker.stop();
    },
    { timeout: 20_000 },
  );
  row("worker", `${worker.workerID} in this process, OpenCode at ${driver.url}`);
  interrupt.throwIfAborted();

  const taskID = `demo-${Date.now().toString(36)}-${randomBytes(3).toString("hex")}`;
  const timeout = opencodeConfig ? OFFLINE_TASK_TIMEOUT_MS : PROVIDER_TASK_TIMEOUT_MS;
  out();
  out(`submitting task ${taskID} to ${dispatcher.names.taskSubject}:`);
  out(`  ${DEMO_PROMPT}`);
  out();
  const handle = await dispatcher.submit({
    taskID,
    prompt: DEMO_PROMPT,
    workspace: { git: { url: repo.url, branch: repo.branch } },
    timeout,
    metadata: { source: "station-coding demo" },
  });
  let finished = false;
  // Interrupted mid-task on a shared server: cancel the task, so that it is not left to redeliver.
  cleanup.defer(
    `cancelling task ${taskID}`,
    async () => {
      if (!finished && !ownServer) await handle.cancel("the demo was interrupted");
    },
    { timeout: 3_000 },
  );
  const result = await followDemoTask(handle, timeout + 30_000, interrupt);
  finished = true;
  out();
  out(formatResult(result));
  out();
  const patch = await readPatch(dispatcher, taskID);
  if (patch !== undefined && patch.trim() !== "") {
    out(`diff (${patchKey(taskID)} in object store ${dispatcher.names.objectStore}):`);
    out(patch.trimEnd());
  } else if (result.changes && result.changes.files.length > 0) {
    out("changed files (no patch was stored):");
    for (const file of result.changes.files) out(`  ${file.status.padEnd(9)} ${file.path}`);
  } else {
    out("the task changed no files");
  }
  out();
  return exitCodeFor(result.status);
}

/**
 * `station-coding demo`: runs one coding task end to end on this machine, with nothing to set up
 * but Node, git and nats-server: NATS (the one at NATS_URL when it answers, else a private
 * nats-server), a worker with a managed OpenCode, the scripted offline model unless a provider key
 * is set, and a sample git repository for the task to edit. It prints the live events, the result
 * and the diff, then stops and removes everything it started, also on an error or Ctrl-C.
 */
export function registerDemo(program: Command, run: Run): void {
  program
    .command("demo")
    .description(
      "run one coding task end to end on this machine: NATS, a worker with OpenCode, a sample repository",
    )
    .option("--offline", "use the scripted offline model even when a provider key is set")
    .addHelpText(
      "after",
      "\nUses the NATS server at --nats-url or NATS_URL when it answers (in org demo, so that it takes\n" +
        "no other tasks), else starts nats-server from PATH with a temp store. Without ANTHROPIC_API_KEY\n" +
        "or OPENAI_API_KEY the model is scripted: no network is needed.",
    )
    .action((flags: DemoFlags, cmd: Command) =>
      run(async () => {
        const all = { ...cmd.optsWithGlobals<CommonFlags>(), ...flags };
        const cleanup = new Cleanup();
        const interrupt = new AbortController();
        const onSignal = (signal: NodeJS.Signals): void => {
          if (interrupt.signal.aborted) process.exit(ExitCode.Interrupted);
          process.stderr.write(`${signal}: cleaning up (again to quit at once)\n`);
          interrupt.abort(signal);
        };
        process.on("SIGINT", onSignal);
        process.on("SIGTERM", onSignal);
        try {
          return await runDemo(all, cleanup, interrupt.signal);
        } catch (err) {
          // Once interrupted, whatever failed did so because of it (the demo's own nats-server
          // is killed by the Ctrl-C too): the interrupt is the news.
          if (!interrupt.signal.aborted) throw err;
          return interrupt.signal.reason === "SIGTERM" ? ExitCode.Terminated : ExitCode.Interrupted;
        } finally {
          out("cleaning up everything the demo started");
          const failures = await cleanup.run();
          for (const failure of failures) process.stderr.write(`cleanup: ${failure}\n`);
          process.off("SIGINT", onSignal);
          process.off("SIGTERM", onSignal);
        }
      }),
    );
}
