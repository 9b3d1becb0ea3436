// The testkit (nats-server launcher, scripted model) is for tests and the demo: the built CLI
// loads it only when `demo` runs, never for `submit`, `worker` or any other command.
import { execFile } from "node:child_process";
import { readFile } from "node:fs/promises";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";
import { describe, expect, it } from "vitest";
import { tempDir } from "@station-coding/testkit";
import { CLI_MAIN } from "./support/cli.js";

const MODULE_LOG = fileURLToPath(new URL("./support/module-log.mjs", import.meta.url));

/** Runs the built CLI with a loader hook; the URLs of every module it loaded, and its exit code. */
async function modulesLoadedBy(
  args: string[],
  env: NodeJS.ProcessEnv = {},
): Promise<{ modules: string[]; code: number }> {
  const log = join(await tempDir("module-log"), "modules.txt");
  const base = { ...process.env };
  for (const name of Object.keys(base)) if (name.startsWith("OTEL_")) delete base[name];
  const code = await promisify(execFile)(process.execPath, ["--import", MODULE_LOG, CLI_MAIN, ...args], {
    env: { ...base, MODULE_LOG: log, NATS_URL: "nats://127.0.0.1:1", ...env },
    timeout: 30_000,
  }).then(
    () => 0,
    (err: { code?: number }) => err.code ?? -1,
  );
  const modules = (await readFile(log, "utf8")).split("\n").filter(Boolean);
  return { modules, code };
}

const testkit = (modules: string[]) => modules.filter((url) => url.includes("/packages/testkit/"));
const promClient = (modules: string[]) => modules.filter((url) => url.includes("/prom-client/"));
const otelSdk = (modules: string[]) =>
  modules.filter((url) => /\/@opentelemetry\/(sdk-trace|exporter-trace-otlp|resources)/.test(url));

describe("the CLI's module graph", () => {
  it("submit loads the worker and dispatcher packages but not the testkit", async () => {
    // Nothing listens on port 1 of loopback: the command fails to connect, after loading all it needs.
    const { modules, code } = await modulesLoadedBy(["submit", "hello", "--no-wait"]);
    expect(code).toBe(1);
    expect(modules.some((url) => url.includes("/packages/dispatcher/dist/"))).toBe(true);
    expect(testkit(modules)).toEqual([]);
    expect(otelSdk(modules)).toEqual([]);
    expect(promClient(modules)).toEqual([]);
  });

  it("loads the OpenTelemetry SDK only when an OTLP endpoint is set", async () => {
    const { modules } = await modulesLoadedBy(["submit", "hello", "--no-wait"], {
      // Loopback port 1: nothing listens; the export at exit fails quietly within its bound.
      OTEL_EXPORTER_OTLP_ENDPOINT: "http://127.0.0.1:1",
    });
    expect(otelSdk(modules).some((url) => url.includes("/@opentelemetry/sdk-trace/"))).toBe(true);
    expect(otelSdk(modules).some((url) => url.includes("/@opentelemetry/exporter-trace-otlp-proto/"))).toBe(
      true,
    );
  });

  it("worker does not load the testkit", async () => {
    const { modules, code } = await modulesLoadedBy(["worker", "--sandbox", "bogus"]);
    expect(code).toBe(2);
    expect(modules.some((url) => url.includes("/packages/worker/dist/"))).toBe(true);
    expect(testkit(modules)).toEqual([]);
    expect(otelSdk(modules)).toEqual([]);
    expect(promClient(modules)).toEqual([]);
  });

  it("demo loads the testkit when it runs", async () => {
    const { modules, code } = await modulesLoadedBy(["demo", "--config", "/nonexistent/station.yaml"]);
    expect(code).toBe(2);
    expect(testkit(modules).some((url) => url.endsWith("/packages/testkit/dist/index.js"))).toBe(true);
  });
});
