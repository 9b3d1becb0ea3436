import type { Command } from "commander";
import { Option } from "commander";
import {
  CodingWorker,
  OpenCodeDriver,
  SecretRedactor,
  createLogger,
  parseSandboxOptions,
} from "@station-coding/worker";
import { CleanupPolicy } from "@station-coding/protocol";
import { parseListen } from "@station-coding/telemetry";
import { namesFromConfig } from "../config.js";
import type { CommonFlags, Run } from "../context.js";
import { UsageError, connectionFrom, durationFlag, intFlag } from "../context.js";
import { offlineModelUrl } from "../offline-model.js";

interface WorkerFlags extends CommonFlags {
  concurrency?: string;
  metricsListen?: string;
  perOrgConcurrency?: string;
  workspaceDir?: string;
  opencodeUrl?: string;
  opencodePassword?: string;
  opencodeConfig?: string;
  offlineModel?: string;
  ackWait?: string;
  taskTimeout?: string;
  maxAttempts?: string;
  shutdownGrace?: string;
  workerId?: string;
  cleanupPolicy?: string;
  gitTokenEnv?: string;
  gitUserName?: string;
  gitUserEmail?: string;
  gitUsername?: string;
  allowLocalRepos?: boolean;
  allowHttpRepos?: boolean;
  allowedGitHosts?: string;
  orgCreds?: string;
  resultSigningKey?: string;
  sandbox?: string;
  sandboxNetwork?: string;
  sandboxAllowedHosts?: string;
}

/** A boolean environment variable: 1/true/yes on, 0/false/no off, unset or empty: undefined. */
function envFlag(name: string, raw: string | undefined): boolean | undefined {
  const value = raw?.trim().toLowerCase();
  if (value === undefined || value === "") return undefined;
  if (["1", "true", "yes", "on"].includes(value)) return true;
  if (["0", "false", "no", "off"].includes(value)) return false;
  throw new UsageError(`${name}=${JSON.stringify(raw)}: must be true or false`);
}

/** `--org-creds acme=/path/a.nk,globex=/path/g.nk` as a record. */
function orgCredsFlag(value: string | undefined): Record<string, string> | undefined {
  if (value === undefined) return undefined;
  const out: Record<string, string> = {};
  for (const part of value.split(",")) {
    const at = part.indexOf("=");
    const org = part.slice(0, at).trim();
    const file = part.slice(at + 1).trim();
    if (at <= 0 || file === "") {
      throw new UsageError(`--org-creds ${JSON.stringify(part)}: must be <org>=<credentials file>`);
    }
    out[org] = file;
  }
  return out;
}

/** `station-coding worker`: runs a worker with a managed (or external) OpenCode. */
export function registerWorker(program: Command, run: Run): void {
  program
    .command("worker")
    .description("run a worker: consume coding tasks and drive OpenCode")
    .option(
      "--concurrency <n>",
      "tasks run at once (env STATION_CONCURRENCY)",
      process.env.STATION_CONCURRENCY,
    )
    .option("--per-org-concurrency <n>", "tasks of one org run at once (shared workers)")
    .option(
      "--workspace-dir <dir>",
      "root of the workspaces (env STATION_WORKSPACE_DIR)",
      process.env.STATION_WORKSPACE_DIR,
    )
    .option(
      "--opencode-url <url>",
      "use this opencode serve instead of starting one (env OPENCODE_URL)",
      process.env.OPENCODE_URL,
    )
    .addOption(
      new Option("--opencode-password <password>", "basic-auth password of --opencode-url").env(
        "OPENCODE_SERVER_PASSWORD",
      ),
    )
    .option(
      "--opencode-config <file>",
      "opencode config (JSON) merged over the defaults: providers, models, permissions (env OPENCODE_CONFIG_FILE)",
      process.env.OPENCODE_CONFIG_FILE,
    )
    .option(
      "--offline-model <url>",
      "base URL of a scripted model (station-model-server) OpenCode uses when no *_API_KEY and no opencode config is set, as `demo` does (env STATION_OFFLINE_MODEL_URL)",
      process.env.STATION_OFFLINE_MODEL_URL,
    )
    .option("--ack-wait <duration>", "task lease length, e.g. 30s")
    .option("--task-timeout <duration>", "time limit of a task that sets none, e.g. 30m")
    .option("--max-attempts <n>", "runs before a task is dead-lettered")
    .option("--shutdown-grace <duration>", "time in-flight tasks get to finish on SIGTERM")
    .option("--worker-id <id>", "worker id (default: hostname-pid-random)")
    .option(
      "--metrics-listen <host:port>",
      "serve /metrics (Prometheus) and /healthz on this address, e.g. 127.0.0.1:9464 (env STATION_METRICS_LISTEN)",
      process.env.STATION_METRICS_LISTEN,
    )
    .option("--cleanup-policy <policy>", "when workspaces are deleted: on_session_end, on_success or manual")
    .option("--git-token-env <name>", "env var holding the git token for private repositories")
    .option("--git-user-name <name>", "author name of commits")
    .option("--git-user-email <email>", "author email of commits")
    .option(
      "--git-username <name>",
      "user name sent with a git token over https, e.g. x-token-auth (env STATION_GIT_TOKEN_USERNAME; default x-access-token)",
    )
    .option(
      "--allow-local-repos",
      "allow file:// and local paths as repositories (env STATION_GIT_ALLOW_LOCAL_REPOS)",
    )
    .option("--allow-http-repos", "allow plain http:// repositories (env STATION_GIT_ALLOW_HTTP)")
    .option(
      "--allowed-git-hosts <hosts>",
      "comma-separated hosts repositories may come from (env STATION_GIT_ALLOWED_HOSTS)",
    )
    .option(
      "--org-creds <org=file,...>",
      "a credentials file per org (one NATS account each): each org gets its own connection",
    )
    .option(
      "--result-signing-key <file>",
      "user nkey seed that signs results when the NATS credentials hold none (user/password, token)",
    )
    .addOption(
      new Option("--sandbox <mode>", "run the agent's tools in the OS sandbox (on) or unconfined (off)")
        .choices(["on", "off"])
        .env("STATION_SANDBOX"),
    )
    .addOption(
      new Option("--sandbox-network <policy>", "network access of the agent's tools")
        .choices(["allow", "deny", "allowlist"])
        .env("STATION_SANDBOX_NETWORK"),
    )
    .addOption(
      new Option(
        "--sandbox-allowed-hosts <hosts>",
        "comma-separated hosts tools may reach with --sandbox-network allowlist",
      ).env("STATION_SANDBOX_ALLOWED_HOSTS"),
    )
    .action((flags: WorkerFlags, cmd: Command) =>
      run(async () => {
        const all = { ...cmd.optsWithGlobals<CommonFlags>(), ...flags };
        const conn = await connectionFrom(all);
        const w = conn.config?.coding.worker;
        const orgs = conn.org ? conn.org.split(",").map((o) => o.trim()) : undefined;
        const redactor = new SecretRedactor().addFromEnv();
        const logger = createLogger(redactor, { name: "station-coding-opencode" });
        const opencodeConfig = flags.opencodeConfig ?? conn.config?.coding.opencode?.config_file;
        const offlineModel = offlineModelUrl(flags.offlineModel, opencodeConfig);
        const concurrency = intFlag("--concurrency", flags.concurrency) ?? w?.concurrency;
        const perOrg = intFlag("--per-org-concurrency", flags.perOrgConcurrency);
        const maxAttempts = intFlag("--max-attempts", flags.maxAttempts) ?? w?.max_attempts;
        const ackWait = durationFlag("--ack-wait", flags.ackWait) ?? w?.ack_wait;
        const taskTimeout = durationFlag("--task-timeout", flags.taskTimeout) ?? w?.task_timeout;
        const shutdownGrace = durationFlag("--shutdown-grace", flags.shutdownGrace) ?? w?.shutdown_grace;
        const workspaceDir = flags.workspaceDir ?? conn.config?.coding.workspace_base_path;
        const policyFlag = flags.cleanupPolicy ?? conn.config?.coding.cleanup_policy;
        const policy = policyFlag === undefined ? undefined : CleanupPolicy.safeParse(policyFlag);
        if (policy && !policy.success) {
          throw new UsageError(
            `--cleanup-policy ${JSON.stringify(policyFlag)}: must be one of ${CleanupPolicy.options.join(", ")}`,
          );
        }
        const cleanupPolicy = policy?.data;
        const gitConfig = conn.config?.coding.git;
        const allowLocalRepos =
          flags.allowLocalRepos ??
          envFlag("STATION_GIT_ALLOW_LOCAL_REPOS", process.env.STATION_GIT_ALLOW_LOCAL_REPOS) ??
          gitConfig?.allow_local_repos;
        const allowHttp =
          flags.allowHttpRepos ??
          envFlag("STATION_GIT_ALLOW_HTTP", process.env.STATION_GIT_ALLOW_HTTP) ??
          gitConfig?.allow_http;
        const hostList = flags.allowedGitHosts ?? process.env.STATION_GIT_ALLOWED_HOSTS;
        const allowedHosts = hostList
          ? hostList
              .split(",")
              .map((h) => h.trim())
              .filter(Boolean)
          : gitConfig?.allowed_hosts;
        const username =
          flags.gitUsername ?? (process.env.STATION_GIT_TOKEN_USERNAME || undefined) ?? gitConfig?.username;
        const orgCreds = orgCredsFlag(flags.orgCreds) ?? conn.config?.coding.nats?.org_creds;
        const resultSigningKey = flags.resultSigningKey ?? w?.result_signing_key;
        const metricsListen = (flags.metricsListen || undefined) ?? w?.metrics_listen;
        if (metricsListen !== undefined) {
          try {
            parseListen(metricsListen);
          } catch (err) {
            throw new UsageError(`--metrics-listen: ${(err as Error).message}`);
          }
        }
        const git = {
          ...((flags.gitTokenEnv ?? gitConfig?.token_env)
            ? { tokenEnv: flags.gitTokenEnv ?? gitConfig?.token_env }
            : {}),
          ...((flags.gitUserName ?? gitConfig?.user_name)
            ? { userName: flags.gitUserName ?? gitConfig?.user_name }
            : {}),
          ...((flags.gitUserEmail ?? gitConfig?.user_email)
            ? { userEmail: flags.gitUserEmail ?? gitConfig?.user_email }
            : {}),
          ...(username ? { username } : {}),
          ...(allowLocalRepos !== undefined ? { allowLocalRepos } : {}),
          ...(allowHttp !== undefined ? { allowHttp } : {}),
          ...(allowedHosts ? { allowedHosts } : {}),
        };
        const sandboxConfig = conn.config?.coding.sandbox;
        const sandboxFile = typeof sandboxConfig === "string" ? { mode: sandboxConfig } : sandboxConfig;
        const sandbox = {
          ...((flags.sandbox ?? sandboxFile?.mode)
            ? { mode: (flags.sandbox ?? sandboxFile?.mode) as "on" | "off" }
            : {}),
          ...((flags.sandboxNetwork ?? sandboxFile?.network)
            ? { network: (flags.sandboxNetwork ?? sandboxFile?.network) as "allow" | "deny" | "allowlist" }
            : {}),
          ...((flags.sandboxAllowedHosts ?? sandboxFile?.allowed_hosts)
            ? {
                allowedHosts:
                  flags.sandboxAllowedHosts?.split(",").map((h) => h.trim()) ??
                  sandboxFile?.allowed_hosts ??
                  [],
              }
            : {}),
          ...(sandboxFile?.read_only_paths ? { readOnlyPaths: sandboxFile.read_only_paths } : {}),
        };
        // The scripted model's provider config comes with the testkit, loaded only when it is used.
        const offlineConfig = offlineModel
          ? (await import("@station-coding/testkit")).scriptedProviderConfig(offlineModel)
          : undefined;
        // Flags are checked before OpenCode starts, so a typo never leaves a server behind.
        const driver = await OpenCodeDriver.start({
          sandbox,
          ...(workspaceDir ? { workspaceRoot: workspaceDir } : {}),
          ...(flags.opencodeUrl ? { url: flags.opencodeUrl } : {}),
          ...(flags.opencodePassword ? { password: flags.opencodePassword } : {}),
          ...(opencodeConfig ? { server: { configFile: opencodeConfig } } : {}),
          ...(offlineConfig ? { server: { config: offlineConfig } } : {}),
          logger,
        });
        let worker: CodingWorker;
        try {
          worker = await CodingWorker.start({
            driver,
            servers: conn.servers,
            ...(conn.creds ? { creds: conn.creds } : {}),
            ...(conn.user ? { user: conn.user } : {}),
            ...(conn.pass ? { pass: conn.pass } : {}),
            ...(conn.token ? { token: conn.token } : {}),
            ...(orgs ? { orgs } : {}),
            ...(orgCreds ? { orgCreds } : {}),
            ...(resultSigningKey ? { resultSigningKey } : {}),
            names: namesFromConfig(conn.config),
            ...(concurrency !== undefined ? { concurrency } : {}),
            ...(perOrg !== undefined ? { perOrgConcurrency: perOrg } : {}),
            ...(maxAttempts !== undefined ? { maxAttempts } : {}),
            ...(ackWait !== undefined ? { ackWait } : {}),
            ...(taskTimeout !== undefined ? { taskTimeout } : {}),
            ...(shutdownGrace !== undefined ? { shutdownGrace } : {}),
            ...(workspaceDir ? { workspaceDir } : {}),
            ...(cleanupPolicy ? { cleanupPolicy } : {}),
            git,
            ...(flags.workerId ? { workerID: flags.workerId } : {}),
            ...(metricsListen !== undefined ? { metricsListen } : {}),
          });
        } catch (err) {
          await driver.close();
          throw err;
        }
        const stopped = new Promise<void>((resolve) => worker.handleSignals(resolve));
        const confined = driver.sandbox.mode === "on";
        process.stderr.write(
          `station-coding worker ${worker.workerID} running (opencode at ${driver.url}; ${
            confined
              ? `sandbox on, network ${parseSandboxOptions(sandbox).network}`
              : "SANDBOX OFF: the agent's tools run unconfined, and every result says sandbox: off"
          }${offlineModel ? `; no provider key: the scripted offline model at ${offlineModel}` : ""})\n`,
        );
        await stopped;
        return 0;
      }),
    );
}
