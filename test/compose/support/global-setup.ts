// Before any compose test file: a Docker engine (started by the shared script when none answers),
// and the project's images built from this checkout. Builds are cached by the engine, whose state
// persists across runs on a machine (/var/tmp/docker-engine): only what changed is built again.
// Afterwards the engine is stopped if this run started it.
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { stringify } from "yaml";
import { ensureEngine, runOk, stopEngine } from "./engine.js";
import { buildOverride } from "./build-override.js";

let started = false;

export async function setup(): Promise<void> {
  const t0 = Date.now();
  started = (await ensureEngine()).started;
  const t1 = Date.now();
  const dir = await mkdtemp(join(tmpdir(), "compose-build-"));
  try {
    await writeFile(join(dir, "override.yaml"), stringify(buildOverride()));
    const env: NodeJS.ProcessEnv = {
      ...process.env,
      COMPOSE_FILE: `docker-compose.yaml:${join(dir, "override.yaml")}`,
      COMPOSE_PROJECT_NAME: "station-coding-build",
    };
    delete env.DOCKER_BUILDKIT;
    // The worker image (also the model's and worker-cluster's) and the CLI image.
    await runOk("docker-compose", ["build", "worker", "station"], {
      env,
      timeout: 30 * 60_000,
      echo: "build |",
    });
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
  const t2 = Date.now();
  process.stderr.write(
    `compose tests: engine ready in ${((t1 - t0) / 1000).toFixed(1)} s${started ? " (started)" : ""}, ` +
      `images built in ${((t2 - t1) / 1000).toFixed(1)} s\n`,
  );
}

export async function teardown(): Promise<void> {
  if (started) await stopEngine();
}
