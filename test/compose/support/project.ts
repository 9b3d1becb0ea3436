// One compose project of the tests: the repository's docker-compose.yaml, plus an override file that
// changes only what a machine of this kind needs (the image build's network) and, for the tests that
// script the model, the model's scenarios; host ports from the STATION_* port variables; `docker
// compose` through a CLI plugin that runs Compose v1.29 (`docker-compose`), the only Compose here.
import { chmod, mkdir, readFile, rm, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { stringify } from "yaml";
import { tempDir, waitFor } from "@station-coding/testkit";
import type { Exit } from "./engine.js";
import { REPO_ROOT, run, runOk } from "./engine.js";
import { buildOverride } from "./build-override.js";
import { freePorts } from "../../deploy/support/deploy.js";

/** Every profile of docker-compose.yaml: `down` and the resource checks cover them all. */
export const PROFILES = ["cli", "demo", "cluster"];

/** Host ports of a project, by the variable docker-compose.yaml reads them from. */
export interface HostPorts {
  STATION_NATS_PORT: number;
  STATION_NATS_MONITOR_PORT: number;
  STATION_NATS_1_PORT: number;
  STATION_NATS_2_PORT: number;
  STATION_NATS_3_PORT: number;
}

/** A container of a project, from `docker ps`. */
export interface ContainerInfo {
  id: string;
  name: string;
  service: string;
  state: string;
  /** `healthy`, `unhealthy`, `starting`, or `none` without a healthcheck. */
  health: string;
  /** The container's hostname: a worker's presence record names it. */
  hostname: string;
}

/** The parts of `docker inspect` read here. */
interface Inspected {
  Id: string;
  Name: string;
  Created: string;
  State: { Status: string; Health?: { Status: string } };
  Config: { Hostname: string; Labels: Record<string, string | undefined> };
  Mounts: { Type: string; Name?: string }[];
}

/** Options of {@link ComposeProject.create}. */
export interface ComposeProjectOptions {
  /**
   * Project name, set through COMPOSE_PROJECT_NAME. Undefined: the one in the repository's .env, as
   * a user gets it.
   */
  name?: string;
  /**
   * More of the override file, merged over the build network part (e.g. the model's scenarios);
   * given the project's temp directory, where `files` are.
   */
  override?: (dir: string) => Record<string, unknown>;
  /** Files to write next to the override file (scenarios), by name. */
  files?: Record<string, string>;
}

/**
 * The `docker compose` CLI plugin of the tests: Compose v2's command line, run by Compose v1.29.
 * The docker CLI finds it in `$DOCKER_CONFIG/cli-plugins` and calls it with `compose` first.
 */
const COMPOSE_SHIM = `#!/bin/sh
# docker compose ... -> docker-compose ...: Compose v1.29 behind Compose v2's command (tests only).
if [ "$1" = docker-cli-plugin-metadata ]; then
  echo '{"SchemaVersion":"0.1.0","Vendor":"station-coding tests","Version":"1.29-shim","ShortDescription":"Compose v1.29 (docker-compose) as docker compose"}'
  exit 0
fi
shift
exec docker-compose "$@"
`;

function merge(base: Record<string, unknown>, over: Record<string, unknown>): Record<string, unknown> {
  const out: Record<string, unknown> = { ...base };
  for (const [key, value] of Object.entries(over)) {
    const current = out[key];
    out[key] = isObject(current) && isObject(value) ? merge(current, value) : value;
  }
  return out;
}

function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

/** A compose project under test, with its own directory, host ports and environment. */
export class ComposeProject {
  private constructor(
    /** The project name Compose uses. */
    readonly name: string,
    /** Temp directory with the override file, the plugin and any scenario files. */
    readonly dir: string,
    readonly ports: HostPorts,
    private readonly baseEnv: NodeJS.ProcessEnv,
  ) {}

  /** Writes the override file and the `docker compose` plugin, and picks free host ports. */
  static async create(options: ComposeProjectOptions = {}): Promise<ComposeProject> {
    const dir = await tempDir("compose");
    const override = merge(buildOverride(), options.override?.(dir) ?? {});
    await writeFile(join(dir, "override.yaml"), stringify(override));
    for (const [name, content] of Object.entries(options.files ?? {})) {
      await writeFile(join(dir, name), content);
    }
    const plugins = join(dir, "docker-config", "cli-plugins");
    await mkdir(plugins, { recursive: true });
    await writeFile(join(plugins, "docker-compose"), COMPOSE_SHIM);
    await chmod(join(plugins, "docker-compose"), 0o755);
    // Never 4222: this machine's own nats-server listens there.
    const [nats, monitor, n1, n2, n3] = await freePorts(5);
    const ports: HostPorts = {
      STATION_NATS_PORT: nats!,
      STATION_NATS_MONITOR_PORT: monitor!,
      STATION_NATS_1_PORT: n1!,
      STATION_NATS_2_PORT: n2!,
      STATION_NATS_3_PORT: n3!,
    };
    const env: NodeJS.ProcessEnv = {
      ...userEnv(),
      COMPOSE_FILE: `docker-compose.yaml:${join(dir, "override.yaml")}`,
      DOCKER_CONFIG: join(dir, "docker-config"),
      ...Object.fromEntries(Object.entries(ports).map(([k, v]) => [k, String(v)])),
    };
    if (options.name !== undefined) env.COMPOSE_PROJECT_NAME = options.name;
    const name = options.name ?? (await projectNameFromDotEnv());
    return new ComposeProject(name, dir, ports, env);
  }

  /** The environment every command of this project runs with. */
  env(extra: NodeJS.ProcessEnv = {}): NodeJS.ProcessEnv {
    return { ...this.baseEnv, ...extra };
  }

  /** NATS URL of the `nats` service from this machine, through its published port. */
  get natsUrl(): string {
    return `nats://127.0.0.1:${this.ports.STATION_NATS_PORT}`;
  }

  /** Runs `docker-compose <args>` to its exit. */
  compose(args: readonly string[], timeout = 180_000): Promise<Exit> {
    return run("docker-compose", args, { env: this.env(), timeout });
  }

  /** Runs `docker-compose <args>` and fails with its output unless it exits 0. */
  composeOk(args: readonly string[], timeout = 180_000): Promise<Exit> {
    return runOk("docker-compose", args, { env: this.env(), timeout });
  }

  /** Runs a line as a user types it, with `sh -c` in the repository root. */
  sh(line: string, timeout = 180_000): Promise<Exit> {
    return run("sh", ["-c", line], { env: this.env(), timeout });
  }

  /** The project's containers (running or not), optionally of one service, oldest first. */
  async containers(service?: string): Promise<ContainerInfo[]> {
    const filters = ["--filter", `label=com.docker.compose.project=${this.name}`];
    if (service !== undefined) filters.push("--filter", `label=com.docker.compose.service=${service}`);
    const ids = (await runOk("docker", ["ps", "-aq", ...filters])).stdout.split("\n").filter(Boolean);
    if (ids.length === 0) return [];
    const inspected = JSON.parse((await runOk("docker", ["inspect", ...ids])).stdout) as Inspected[];
    return inspected
      .sort((a, b) => a.Created.localeCompare(b.Created))
      .map((c) => ({
        id: c.Id,
        name: c.Name.replace(/^\//, ""),
        service: c.Config.Labels["com.docker.compose.service"] ?? "",
        state: c.State.Status,
        health: c.State.Health?.Status ?? "none",
        hostname: c.Config.Hostname,
      }));
  }

  /** Waits until `count` containers of each service run and are healthy, and no more run. */
  async waitHealthy(services: Record<string, number>, timeout = 150_000): Promise<ContainerInfo[]> {
    return waitFor(
      async () => {
        const running = (await this.containers()).filter((c) => c.state === "running");
        const ready = Object.entries(services).every(([service, count]) => {
          const of = running.filter((c) => c.service === service);
          return of.length === count && of.every((c) => c.health === "healthy");
        });
        if (!ready) throw new Error(`running: ${running.map((c) => `${c.name} ${c.health}`).join(", ")}`);
        return running.filter((c) => c.service in services);
      },
      { timeout, interval: 1_000, message: `healthy containers ${JSON.stringify(services)}` },
    );
  }

  /**
   * Containers, networks and volumes of the project: those that carry its label, and the anonymous
   * volumes (the workers' /workspaces) its containers mount.
   */
  async resources(): Promise<{ containers: string[]; networks: string[]; volumes: string[] }> {
    const label = `label=com.docker.compose.project=${this.name}`;
    const list = async (args: string[], field: string) =>
      (await runOk("docker", [...args, "--filter", label, "--format", `{{.${field}}}`])).stdout
        .split("\n")
        .filter(Boolean);
    const containers = await list(["ps", "-a"], "Names");
    const mounted =
      containers.length === 0
        ? []
        : (JSON.parse((await runOk("docker", ["inspect", ...containers])).stdout) as Inspected[]).flatMap(
            (c) => c.Mounts.filter((m) => m.Type === "volume").map((m) => m.Name!),
          );
    const volumes = [...new Set([...(await list(["volume", "ls"], "Name")), ...mounted])].sort();
    return { containers, networks: await list(["network", "ls"], "Name"), volumes };
  }

  /** Which of these volumes still exist. */
  async existingVolumes(names: readonly string[]): Promise<string[]> {
    const all = (await runOk("docker", ["volume", "ls", "-q"])).stdout.split("\n");
    return names.filter((n) => all.includes(n));
  }

  /** Removes everything of the project (every profile, the volumes) and the temp directory. */
  async destroy(): Promise<void> {
    const profiles = PROFILES.flatMap((p) => ["--profile", p]);
    await this.compose([...profiles, "down", "-v", "--remove-orphans", "-t", "5"]);
    await rm(this.dir, { recursive: true, force: true });
  }
}

/** The project name the repository's .env gives Compose. */
async function projectNameFromDotEnv(): Promise<string> {
  const text = await readFile(join(REPO_ROOT, ".env"), "utf8");
  const name = /^COMPOSE_PROJECT_NAME=(\S+)$/m.exec(text)?.[1];
  if (!name) throw new Error(".env has no COMPOSE_PROJECT_NAME line");
  return name;
}

/**
 * This process's environment without what would change a command: Compose's own variables, the
 * station settings and provider keys (the tests run without a key, as the demo profile is for).
 */
function userEnv(): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {};
  for (const [name, value] of Object.entries(process.env)) {
    if (
      /^(COMPOSE_|STATION_|NATS_|OPENCODE_|LOG_LEVEL$|DOCKER_CONFIG$|DOCKER_BUILDKIT$)|_API_KEY$/.test(name)
    )
      continue;
    env[name] = value;
  }
  return env;
}
