// docker-compose.yaml, deploy/Dockerfile and deploy/station.example.yaml against the repository:
// every file, build target, command and environment variable they name exists and is read.
// No Docker engine is needed: the commands themselves run in worker-container.test.ts.
import { existsSync, readdirSync, statSync } from "node:fs";
import { dirname, join } from "node:path";
import { beforeAll, describe, expect, it } from "vitest";
import { loadConfig, namesFromConfig } from "@station-coding/cli";
import { codingNames } from "@station-coding/protocol";
import type { ComposeFile } from "./support/deploy.js";
import {
  CLI_ENTRY,
  REPO_ROOT,
  dockerIgnored,
  dockerStages,
  documentedComposeVars,
  documentedEnvVars,
  envVarsReadBySources,
  execForm,
  interpolatedNames,
  loadCompose,
  repoFile,
  requireBuiltCli,
  runCli,
  service,
} from "./support/deploy.js";

/**
 * Variables the sources read that are not station-coding settings: the search path, and the
 * testkit's Docker fallback, which the demo turns off (it starts nats-server from PATH or nothing).
 */
const NOT_SETTINGS = ["PATH", "NATS_SERVER_DOCKER", "NATS_SERVER_IMAGE"];

let compose: ComposeFile;
let helps: Map<string, string>;

/** `station-coding <command> --help`, or undefined when the command is not registered. */
async function helpOf(command: string): Promise<string | undefined> {
  if (!helps.has(command)) {
    const exit = await runCli(command === "" ? ["--help"] : [command, "--help"]);
    helps.set(command, exit.code === 0 ? exit.stdout : "");
  }
  return helps.get(command) || undefined;
}

/** A CLI invocation found in a text, with the flags given to it. */
interface Invocation {
  command: string;
  flags: string[];
  line: string;
}

/**
 * Every CLI invocation in a text: `node packages/cli/dist/main.js <command> ...`, a backticked
 * `station-coding <command> ...`, and `docker compose ... run ... station <command> ...`.
 */
function cliInvocations(text: string): Invocation[] {
  const joined = text.replace(/\\\n\s*/g, " ");
  const found: Invocation[] = [];
  const add = (command: string, rest: string, line: string): void => {
    const flags = [...rest.matchAll(/(?:^|\s)(--[a-z][a-z-]*)/g)].map((m) => m[1]!);
    found.push({ command, flags, line });
  };
  for (const m of joined.matchAll(/packages\/cli\/dist\/main\.js ([a-z]+)([^\n|'"`]*)/g))
    add(m[1]!, m[2]!, m[0]);
  for (const m of joined.matchAll(/`station-coding ([a-z]+)([^`]*)`/g)) add(m[1]!, m[2]!, m[0]);
  for (const line of joined.split("\n")) {
    const m = /docker compose .*\brun\b.* station ([a-z]+)(.*)$/.exec(line);
    if (m) add(m[1]!, m[2]!, line.trim());
  }
  return found;
}

beforeAll(() => {
  requireBuiltCli();
  compose = loadCompose();
  helps = new Map();
});

describe("docker-compose.yaml", () => {
  it("parses, and runs NATS and a worker by default, the CLI in profile cli, the scripted model in profile demo, a cluster in profile cluster and the gateway in profile gateway", () => {
    const byProfile = (profile: string | undefined) =>
      Object.entries(compose.services)
        .filter(([, s]) => (s.profiles ?? [])[0] === profile)
        .map(([name]) => name)
        .sort();
    expect(byProfile(undefined)).toEqual(["nats", "worker"]);
    expect(byProfile("cli")).toEqual(["station"]);
    expect(byProfile("demo")).toEqual(["model"]);
    expect(byProfile("cluster")).toEqual(["nats-1", "nats-2", "nats-3", "worker-cluster"]);
    expect(byProfile("gateway")).toEqual(["gateway"]);
  });

  it("builds every image from a Dockerfile stage that exists, with a context that exists", () => {
    const built = Object.entries(compose.services).filter(([, s]) => s.build);
    expect(built.map(([name]) => name).sort()).toEqual([
      "gateway",
      "model",
      "station",
      "worker",
      "worker-cluster",
    ]);
    for (const [name, s] of built) {
      const context = join(REPO_ROOT, s.build!.context);
      expect(existsSync(context), `${name}: build context`).toBe(true);
      const dockerfile = join(context, s.build!.dockerfile);
      expect(existsSync(dockerfile), `${name}: ${s.build!.dockerfile}`).toBe(true);
      const stages = dockerStages(repoFile(s.build!.dockerfile));
      expect([...stages.keys()], `${name}: target ${s.build!.target}`).toContain(s.build!.target);
    }
  });

  it("mounts NATS configs that exist where the servers read them, and stores JetStream in a named volume", () => {
    const natsServices = ["nats", "nats-1", "nats-2", "nats-3"];
    for (const name of natsServices) {
      const s = service(compose, name);
      expect(s.image, name).toMatch(/^nats:2\.(1[1-9]|[2-9]\d)/);
      const configPath = s.command![s.command!.indexOf("--config") + 1];
      const mounts = (s.volumes ?? []).map((v) => v.split(":"));
      const configMount = mounts.find(([, target]) => target === configPath);
      expect(configMount, `${name}: ${configPath} is mounted`).toBeDefined();
      const source = configMount![0]!;
      expect(existsSync(join(REPO_ROOT, source)), `${name}: ${source}`).toBe(true);
      const config = repoFile(source);
      const storeDir = /store_dir:\s*(\S+)/.exec(config)?.[1];
      const dataMount = mounts.find(([, target]) => target === storeDir);
      expect(dataMount, `${name}: store_dir ${storeDir} is a volume`).toBeDefined();
      expect(Object.keys(compose.volumes ?? {}), name).toContain(dataMount![0]);
      // The healthcheck asks the monitoring port the config opens.
      const port = /http_port:\s*(\d+)/.exec(config)?.[1];
      expect(s.healthcheck?.test.join(" "), name).toContain(`http://localhost:${port}/healthz`);
    }
    const clusterConfigs = readdirSync(join(REPO_ROOT, "deploy/nats/cluster")).sort();
    expect(clusterConfigs).toEqual(["nats-1.conf", "nats-2.conf", "nats-3.conf"]);
  });

  it("starts each service after what it depends on is healthy, and every such service has a healthcheck", () => {
    for (const [name, s] of Object.entries(compose.services)) {
      for (const [dependency, { condition }] of Object.entries(s.depends_on ?? {})) {
        expect(condition, `${name} -> ${dependency}`).toBe("service_healthy");
        expect(service(compose, dependency).healthcheck, `${dependency} healthcheck`).toBeDefined();
      }
    }
    expect(Object.keys(service(compose, "worker").depends_on ?? {})).toEqual(["nats"]);
    expect(Object.keys(service(compose, "worker-cluster").depends_on ?? {}).sort()).toEqual([
      "nats-1",
      "nats-2",
      "nats-3",
    ]);
  });

  it("is a file Compose v1.29 and v2 both read: no top-level name, no option v1.29 cannot pass, the project name in .env", () => {
    // v1.29 rejects `name:` and any top-level key but these; v2 ignores `x-` keys like v1.29.
    for (const key of Object.keys(compose)) {
      expect(["services", "volumes", "networks"].includes(key) || key.startsWith("x-"), key).toBe(true);
    }
    // v1.29 hands security_opt to the daemon as written, and dockerd refuses systempaths=...
    // (only the docker CLI and Compose v2 translate it).
    for (const [name, s] of Object.entries(compose.services)) {
      for (const opt of s.security_opt ?? [])
        expect(opt, name).toMatch(/^(seccomp|apparmor|label)[=:]|^no-new-privileges/);
    }
    expect(repoFile(".env")).toMatch(/^COMPOSE_PROJECT_NAME=station-coding$/m);
    // .env is committed for the project name: nothing else, no key, belongs in it.
    expect(
      repoFile(".env")
        .split("\n")
        .filter((l) => /^[A-Z]/.test(l)),
    ).toEqual(["COMPOSE_PROJECT_NAME=station-coding"]);
  });

  it("publishes every host port from a documented variable, with the documented default", () => {
    const vars = documentedComposeVars();
    expect(vars.get("COMPOSE_PROJECT_NAME")).toContain("station-coding");
    const published = Object.entries(compose.services).flatMap(([name, s]) =>
      (s.ports ?? []).map((p) => ({ name, p })),
    );
    expect(published.length).toBeGreaterThan(0);
    for (const { name, p } of published) {
      const m = /^\$\{([A-Z0-9_]+):-(\d+)\}:(\d+)$/.exec(p);
      expect(m, `${name}: ${p} is "\${VAR:-default}:container"`).not.toBeNull();
      expect(vars.get(m![1]!), `${name}: ${m![1]} documented with default ${m![2]}`).toBe(m![2]);
    }
  });

  it("runs the workers as root with SYS_ADMIN only for the entry point, which drops to node", () => {
    for (const name of ["worker", "worker-cluster"]) {
      const s = service(compose, name);
      expect(s).toMatchObject({ user: "root", cap_add: ["SYS_ADMIN"] });
      expect(s.security_opt?.sort()).toEqual(["apparmor=unconfined", "seccomp=unconfined"]);
    }
    const entry = repoFile("deploy/worker-entrypoint.sh");
    expect(entry).toMatch(/--reuid=node --regid=node --init-groups --inh-caps=-all --bounding-set=-all/);
    expect(entry).toMatch(/--no-new-privs -- tini -- "\$@"/);
    expect(statSync(join(REPO_ROOT, "deploy/worker-entrypoint.sh")).mode & 0o111).not.toBe(0);
    // Nothing else runs as root or with a capability.
    for (const [name, s] of Object.entries(compose.services)) {
      if (name === "worker" || name === "worker-cluster") continue;
      expect(s.user, name).toBeUndefined();
      expect(s.cap_add, name).toBeUndefined();
    }
  });

  it("points the worker's offline model at the demo profile's model service, on the port it listens on", () => {
    const url = new URL(service(compose, "worker").environment!.STATION_OFFLINE_MODEL_URL!);
    const model = service(compose, "model");
    expect(url.hostname).toBe("model");
    expect(model.command).toEqual(
      expect.arrayContaining([
        "packages/testkit/dist/bin/model-server.js",
        "--host",
        "0.0.0.0",
        "--port",
        url.port,
      ]),
    );
    const pkg = JSON.parse(repoFile("packages/testkit/package.json")) as { bin: Record<string, string> };
    expect(join("packages/testkit", pkg.bin["station-model-server"]!)).toBe(model.command![1]);
    expect(model.healthcheck?.test.join(" ")).toContain(`http://127.0.0.1:${url.port}/v1/models`);
  });

  it("points every NATS_URL at NATS services of the file", () => {
    for (const [name, s] of Object.entries(compose.services)) {
      const url = s.environment?.NATS_URL;
      if (url === undefined || url === null) continue;
      for (const server of url.split(",")) {
        const { hostname, port, protocol } = new URL(server);
        expect(protocol, `${name}: ${server}`).toBe("nats:");
        expect(port, `${name}: ${server}`).toBe("4222");
        expect(compose.services[hostname]?.image, `${name}: ${server} is a NATS service`).toMatch(/^nats:/);
      }
    }
  });

  it("runs the worker as the built CLI's registered `worker` command, the entry point `npm run build` produces", async () => {
    const worker = service(compose, "worker");
    expect(worker.command).toEqual(["node", CLI_ENTRY, "worker"]);
    const pkg = JSON.parse(repoFile("packages/cli/package.json")) as { bin: Record<string, string> };
    // The package's bin is a committed launcher (npm links it at install) that runs that entry.
    const bin = join("packages/cli", pkg.bin["station-coding"]!);
    expect(repoFile(bin)).toContain('new URL("../dist/main.js", import.meta.url)');
    expect(join(dirname(bin), "../dist/main.js")).toBe(CLI_ENTRY);
    expect(await helpOf("worker")).toMatch(/Usage: station-coding worker/);
    // The image runs the same command when compose gives none.
    const stages = dockerStages(repoFile("deploy/Dockerfile"));
    expect(execForm(stages.get("worker")!, "CMD")).toEqual(worker.command);
    expect(execForm(stages.get("cli")!, "ENTRYPOINT")).toEqual(["tini", "--", "node", CLI_ENTRY]);
    expect(execForm(stages.get("worker")!, "ENTRYPOINT")).toEqual(["station-worker-entrypoint"]);
    for (const stage of ["cli", "worker"]) {
      expect(
        stages.get(stage)!.filter((l) => /^USER /.test(l)),
        stage,
      ).toEqual(["USER node"]);
    }
  });

  it("names only registered CLI commands and flags, in the compose file and docs/operations.md", async () => {
    const texts = {
      "docker-compose.yaml": repoFile("docker-compose.yaml"),
      "docs/operations.md": repoFile("docs/operations.md"),
    };
    const invocations = Object.entries(texts).flatMap(([file, text]) =>
      cliInvocations(text).map((i) => ({ ...i, file })),
    );
    expect(invocations.map((i) => i.command)).toEqual(
      expect.arrayContaining(["worker", "status", "submit", "init"]),
    );
    const globalHelp = (await helpOf(""))!;
    for (const { command, flags, line, file } of invocations) {
      const help = await helpOf(command);
      expect(help, `${file}: "${line}": ${command} is not a station-coding command`).toBeDefined();
      for (const flag of flags) {
        expect(`${help}${globalHelp}`, `${file}: "${line}": ${command} has no ${flag}`).toContain(flag);
      }
    }
  });

  it("sets only environment variables station-coding reads, all of them documented", () => {
    const documented = documentedEnvVars();
    for (const [name, s] of Object.entries(compose.services)) {
      for (const variable of Object.keys(s.environment ?? {})) {
        expect(documented, `${name} sets ${variable}`).toContain(variable);
      }
    }
    const composeVars = [...documentedComposeVars().keys()];
    for (const variable of interpolatedNames(repoFile("docker-compose.yaml"))) {
      expect([...documented, ...composeVars], `docker-compose.yaml interpolates ${variable}`).toContain(
        variable,
      );
    }
    const dockerfileEnv = [...repoFile("deploy/Dockerfile").matchAll(/^ENV\s+([A-Z0-9_]+)=/gm)].map(
      (m) => m[1],
    );
    for (const variable of dockerfileEnv)
      expect(documented, `deploy/Dockerfile sets ${variable}`).toContain(variable);
    // The worker gets what it needs to run and to reach a provider.
    expect(Object.keys(service(compose, "worker").environment ?? {})).toEqual(
      expect.arrayContaining([
        "NATS_URL",
        "STATION_WORKSPACE_DIR",
        "ANTHROPIC_API_KEY",
        "OPENAI_API_KEY",
        "OPENCODE_CONFIG_FILE",
      ]),
    );
  });
});

describe("docs/operations.md", () => {
  it("documents exactly the environment variables the sources read", () => {
    const read = envVarsReadBySources();
    const settings = [...read.keys()].filter((v) => !NOT_SETTINGS.includes(v)).sort();
    const documented = documentedEnvVars();
    expect(new Set(documented).size, "documented twice").toBe(documented.length);
    const undocumented = settings.filter((v) => !documented.includes(v));
    expect(
      undocumented,
      `read but not documented: ${undocumented.map((v) => `${v} (${read.get(v)!.join(", ")})`).join("; ")}`,
    ).toEqual([]);
    expect(
      documented.filter((v) => !settings.includes(v)),
      "documented but read nowhere",
    ).toEqual([]);
  });
});

describe("deploy/Dockerfile", () => {
  it("copies every workspace package's manifest before npm ci, and keeps the build context lean but sufficient", () => {
    const dockerfile = repoFile("deploy/Dockerfile");
    const packages = readdirSync(join(REPO_ROOT, "packages")).sort();
    const copied = [...dockerfile.matchAll(/^COPY packages\/([a-z-]+)\/package\.json /gm)]
      .map((m) => m[1])
      .sort();
    expect(copied).toEqual(packages);
    const build = dockerStages(dockerfile).get("build")!;
    const sources = build
      .filter((l) => l.startsWith("COPY ") && !l.includes("--from"))
      .flatMap((l) => l.split(/\s+/).slice(1, -1));
    for (const source of sources) expect(existsSync(join(REPO_ROOT, source)), source).toBe(true);
    const ignored = repoFile(".dockerignore")
      .split("\n")
      .map((l) => l.trim())
      .filter((l) => l !== "" && !l.startsWith("#"));
    for (const source of sources)
      expect(dockerIgnored(source, ignored), `.dockerignore excludes ${source}`).toBe(false);
    // The later stages copy from the context too: the worker's entry point.
    const fromContext = [...dockerStages(dockerfile).values()]
      .flat()
      .filter((l) => l.startsWith("COPY ") && !l.includes("--from"))
      .flatMap((l) => l.split(/\s+/).slice(1, -1));
    expect(fromContext).toContain("deploy/worker-entrypoint.sh");
    for (const source of fromContext) {
      expect(existsSync(join(REPO_ROOT, source)), source).toBe(true);
      expect(dockerIgnored(source, ignored), `.dockerignore excludes ${source}`).toBe(false);
    }
    expect(dockerIgnored("deploy/nats/nats.conf", ignored)).toBe(true);
    expect(dockerIgnored("packages/cli/node_modules/x", ignored)).toBe(true);
    expect(ignored).toEqual(expect.arrayContaining([".env", "**/node_modules", "**/dist", ".git"]));
    expect(build.join("\n")).toMatch(/npm ci/);
    expect(build.join("\n")).toMatch(/tsc -b/);
    expect(dockerfile).toMatch(/^ARG NODE_IMAGE=node:20-bookworm-slim$/m);
  });
});

describe("deploy/station.example.yaml", () => {
  it("loads with the CLI's loader and names the defaults and the compose setup", async () => {
    const config = await loadConfig(join(REPO_ROOT, "deploy/station.example.yaml"));
    const names = codingNames(namesFromConfig(config));
    const defaults = codingNames();
    expect(names.taskSubject).toBe(defaults.taskSubject);
    expect(names.streamSubject("t1")).toBe(defaults.streamSubject("t1"));
    expect(names.resultSubject("t1")).toBe(defaults.resultSubject("t1"));
    expect(names.kv).toEqual(defaults.kv);
    expect(names.objectStore).toBe(defaults.objectStore);
    const worker = service(compose, "worker");
    expect(config.coding.nats?.url).toBe(worker.environment?.NATS_URL);
    expect(config.coding.workspace_base_path).toBe(worker.environment?.STATION_WORKSPACE_DIR);
    expect(config.coding).toMatchObject({
      backend: "opencode-nats",
      cleanup_policy: "on_session_end",
      git: { token_env: expect.any(String), user_name: expect.any(String), user_email: expect.any(String) },
    });
  });
});
