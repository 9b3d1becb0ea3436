// The NATS configs of deploy/nats/ with the nats-server on PATH: they are valid as written, the
// single-node one answers the compose healthcheck with JetStream on, and the three cluster configs
// form a JetStream cluster. The image runs nats 2.11+; these settings are the same since 2.9.
import { execFile, spawn } from "node:child_process";
import { mkdir, readFile, readdir, rm, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { promisify } from "node:util";
import { afterEach, describe, expect, it } from "vitest";
import { tempDir, waitFor } from "@station-coding/testkit";
import { Child, REPO_ROOT, freePorts, loadCompose, repoFile, service } from "./support/deploy.js";

const exec = promisify(execFile);
const started: Child[] = [];
const dirs: string[] = [];

afterEach(async () => {
  await Promise.all(started.splice(0).map((child) => child.kill()));
  await Promise.all(dirs.splice(0).map((dir) => rm(dir, { recursive: true, force: true })));
});

/** The config with its container paths and host names mapped to this machine. */
function localConfig(config: string, storeDir: string, hosts: Record<string, number> = {}): string {
  let text = config.replace(/store_dir:\s*\/data/, `store_dir: ${JSON.stringify(storeDir)}`);
  for (const [host, port] of Object.entries(hosts)) {
    text = text.replaceAll(`//${host}:6222`, `//127.0.0.1:${port}`);
  }
  return text;
}

/** Starts nats-server with `config` on free client and monitoring ports; resolves with them. */
async function startServer(
  config: string,
  dir: string,
): Promise<{ child: Child; port: number; monitor: number }> {
  await mkdir(dir, { recursive: true });
  const file = join(dir, "nats.conf");
  await writeFile(file, config);
  const [port, monitor] = await freePorts(2);
  const child = new Child(
    spawn("nats-server", ["-c", file, "-p", String(port), "-m", String(monitor), "--ports_file_dir", dir], {
      stdio: ["ignore", "pipe", "pipe"],
    }),
  );
  started.push(child);
  await waitFor(async () => (await readdir(dir)).some((f) => f.endsWith(".ports")), {
    timeout: 10_000,
    message: `nats-server with ${file} to listen: ${child.stderr}`,
  });
  return { child, port: port!, monitor: monitor! };
}

async function getJson(url: string): Promise<{ status: number; body: Record<string, unknown> }> {
  const res = await fetch(url);
  return { status: res.status, body: (await res.json()) as Record<string, unknown> };
}

describe("deploy/nats configs", () => {
  it("are valid for nats-server as written", async () => {
    const files = [
      "deploy/nats/nats.conf",
      ...(await readdir(join(REPO_ROOT, "deploy/nats/cluster"))).map((f) => `deploy/nats/cluster/${f}`),
    ];
    for (const file of files) {
      const { stderr } = await exec("nats-server", ["-c", join(REPO_ROOT, file), "-t"]);
      expect(stderr, file).toMatch(/is valid/);
    }
  });

  it("single node: the compose healthcheck URL answers ok once JetStream is on", async () => {
    const dir = await tempDir("deploy-nats");
    dirs.push(dir);
    const { monitor } = await startServer(
      localConfig(repoFile("deploy/nats/nats.conf"), join(dir, "store")),
      dir,
    );
    const check = service(loadCompose(), "nats").healthcheck!.test;
    const url = check
      .find((arg) => arg.startsWith("http://"))!
      .replace("localhost:8222", `127.0.0.1:${monitor}`);
    await waitFor(async () => (await getJson(url)).status === 200, { timeout: 10_000, message: url });
    expect((await getJson(url)).body).toEqual({ status: "ok" });
    const jsz = await getJson(`http://127.0.0.1:${monitor}/jsz`);
    expect(jsz.body.config).toMatchObject({ store_dir: join(dir, "store", "jetstream") });
  });

  it("cluster: the three configs form one JetStream cluster (routes mapped to loopback ports)", async () => {
    const dir = await tempDir("deploy-cluster");
    dirs.push(dir);
    const routePorts = await freePorts(3);
    const hosts = Object.fromEntries(routePorts.map((port, i) => [`nats-${i + 1}`, port]));
    const nodes: { monitor: number }[] = [];
    for (let i = 1; i <= 3; i++) {
      const config = localConfig(
        repoFile(`deploy/nats/cluster/nats-${i}.conf`),
        join(dir, `store-${i}`),
        hosts,
      ).replace("listen: 0.0.0.0:6222", `listen: 127.0.0.1:${hosts[`nats-${i}`]}`);
      nodes.push(await startServer(config, join(dir, `node-${i}`)));
    }
    await waitFor(
      async () => {
        const jsz = await getJson(`http://127.0.0.1:${nodes[0]!.monitor}/jsz`);
        const meta = jsz.body.meta_cluster as { leader?: string; cluster_size?: number } | undefined;
        return meta?.leader !== undefined && meta.cluster_size === 3;
      },
      { timeout: 20_000, message: "a JetStream meta leader over 3 nodes" },
    );
    const varz = await getJson(`http://127.0.0.1:${nodes[1]!.monitor}/varz`);
    expect(varz.body).toMatchObject({ server_name: "nats-2", cluster: { name: "station" } });
  });

  it("differ between cluster nodes only in server_name", async () => {
    const texts = await Promise.all(
      [1, 2, 3].map((i) => readFile(join(REPO_ROOT, `deploy/nats/cluster/nats-${i}.conf`), "utf8")),
    );
    const normalized = texts.map((t, i) =>
      t
        .replaceAll(`nats-${i + 1}.conf`, "")
        .replace(/(server_name: nats-)\d/, "$1N")
        .replace(/Node \d of 3/, "Node N of 3"),
    );
    expect(normalized[1]).toBe(normalized[0]);
    expect(normalized[2]).toBe(normalized[0]);
  });
});
