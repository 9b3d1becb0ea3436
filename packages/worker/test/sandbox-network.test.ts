// The network policy of the agent's tools: the gate's decisions, the real sandbox and proxy against
// an HTTP server in a network namespace this test creates (never a public or private address
// outside it), and `network: deny` with real OpenCode and curl.
import { execFile, spawn } from "node:child_process";
import type { ChildProcess } from "node:child_process";
import { randomBytes } from "node:crypto";
import { mkdir, realpath, rm } from "node:fs/promises";
import { join } from "node:path";
import { promisify } from "node:util";
import { pino } from "pino";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { tempDir, waitFor } from "@station-coding/testkit";
import {
  NetworkGate,
  SandboxProxy,
  resolveSandbox,
  systemLayout,
  writeShellScript,
} from "@station-coding/worker/internal";
import type { Env } from "@station-coding/testkit/worker";
import {
  eventsOf,
  publishTask,
  startEnv,
  startOpenCode,
  startWorker,
  waitResult,
} from "@station-coding/testkit/worker";

const run = promisify(execFile);

describe("NetworkGate", () => {
  const resolver = async (host: string) => {
    const table: Record<string, string> = {
      "public.example": "93.184.216.34",
      "internal.example": "10.1.2.3",
      "rebind.example": "127.0.0.1",
      "meta.example": "169.254.169.254",
    };
    const address = table[host];
    if (!address) throw new Error("ENOTFOUND");
    return [{ address, family: 4 }];
  };

  it("deny refuses everything", async () => {
    const gate = new NetworkGate("deny", [], resolver);
    expect(await gate.decide("public.example")).toMatchObject({
      allowed: false,
      reason: "sandbox.network is deny",
    });
  });

  it("allow passes public addresses and never the host's loopback, internal or metadata ones", async () => {
    const gate = new NetworkGate("allow", [], resolver);
    expect(await gate.decide("public.example")).toEqual({
      allowed: true,
      address: "93.184.216.34",
      family: 4,
    });
    for (const host of [
      "127.0.0.1",
      "localhost.",
      "rebind.example",
      "[::1]",
      "0.0.0.0",
      "::ffff:127.0.0.1",
    ]) {
      const decision = await gate.decide(host === "localhost." ? "rebind.example" : host);
      expect(decision.allowed, host).toBe(false);
    }
    expect(await gate.decide("internal.example")).toMatchObject({ allowed: false });
    expect(await gate.decide("meta.example")).toMatchObject({ allowed: false });
    expect(await gate.decide("192.168.1.1")).toMatchObject({ allowed: false });
    expect(await gate.decide("nowhere.example")).toMatchObject({ allowed: false });
  });

  it("allowlist passes only listed hosts (wildcards too), internal ones when named, loopback never", async () => {
    const gate = new NetworkGate("allowlist", ["*.example", "10.1.2.3", "127.0.0.1"], resolver);
    expect(await gate.decide("public.example")).toMatchObject({ allowed: true });
    // Listed (here by the wildcard), an internal address passes; unlisted it would not (see allow).
    expect(await gate.decide("internal.example")).toMatchObject({ allowed: true, address: "10.1.2.3" });
    expect(await gate.decide("10.1.2.3")).toMatchObject({ allowed: true });
    expect(await gate.decide("127.0.0.1")).toMatchObject({ allowed: false });
    expect(await gate.decide("93.184.216.34")).toMatchObject({
      allowed: false,
      reason: "93.184.216.34 is not in sandbox.allowedHosts",
    });
  });
});

/** An HTTP server inside a network namespace of its own, reached from the host over a veth pair. */
class NamespacedServer {
  private constructor(
    readonly ns: string,
    readonly address: string,
    readonly port: number,
    private readonly child: ChildProcess,
  ) {}

  static async start(): Promise<NamespacedServer> {
    const id = randomBytes(3).toString("hex");
    const ns = `sc-test-${id}`;
    const subnet = `10.${200 + (parseInt(id.slice(0, 2), 16) % 50)}.${parseInt(id.slice(2, 4), 16)}`;
    const host = `vh${id}`;
    const peer = `vp${id}`;
    await run("ip", ["netns", "add", ns]);
    await run("ip", ["link", "add", host, "type", "veth", "peer", "name", peer]);
    await run("ip", ["link", "set", peer, "netns", ns]);
    await run("ip", ["addr", "add", `${subnet}.1/30`, "dev", host]);
    await run("ip", ["link", "set", host, "up"]);
    await run("ip", ["netns", "exec", ns, "ip", "addr", "add", `${subnet}.2/30`, "dev", peer]);
    await run("ip", ["netns", "exec", ns, "ip", "link", "set", peer, "up"]);
    await run("ip", ["netns", "exec", ns, "ip", "link", "set", "lo", "up"]);
    const port = 18080;
    const script = `require("http").createServer((q,r)=>r.end("inside the test namespace\\n")).listen(${port},"${subnet}.2",()=>console.log("up"))`;
    const child = spawn("ip", ["netns", "exec", ns, process.execPath, "-e", script], {
      stdio: ["ignore", "pipe", "inherit"],
    });
    let out = "";
    child.stdout?.on("data", (c: Buffer) => (out += c.toString()));
    await waitFor(() => out.includes("up"), { timeout: 10_000, message: "namespaced server" });
    return new NamespacedServer(ns, `${subnet}.2`, port, child);
  }

  async stop(): Promise<void> {
    this.child.kill("SIGKILL");
    await run("ip", ["netns", "delete", this.ns]).catch(() => undefined);
  }
}

let target: NamespacedServer;
beforeAll(async () => {
  target = await NamespacedServer.start();
}, 30_000);
afterAll(async () => {
  await target?.stop();
});

describe("the tools' network through the sandbox and the worker's proxy", () => {
  async function shellWithProxy(gate: NetworkGate) {
    const dir = await realpath(await tempDir("sandbox-net"));
    const workspace = join(dir, "root", "ws");
    await mkdir(workspace, { recursive: true });
    const sandbox = await resolveSandbox({ network: gate.policy === "deny" ? "deny" : "allow" });
    const proxy = new SandboxProxy(join(dir, "proxy.sock"), gate, pino({ level: "silent" }));
    await proxy.start();
    const shell = await writeShellScript(join(dir, "bin"), {
      bwrap: sandbox.bwrap,
      layout: await systemLayout(),
      workspaceRoot: join(dir, "root"),
      proxySocket: proxy.socketPath,
      socat: sandbox.socat,
    });
    const exec = async (command: string) =>
      run(shell, ["-c", command], { cwd: workspace, env: { STATION_SANDBOX_WORKSPACE: workspace } }).then(
        (r) => ({ code: 0, out: r.stdout + r.stderr }),
        (e: { code?: number; stdout?: string; stderr?: string }) => ({
          code: e.code ?? -1,
          out: `${e.stdout ?? ""}${e.stderr ?? ""}`,
        }),
      );
    return {
      exec,
      async close() {
        await proxy.stop();
        await rm(dir, { recursive: true, force: true });
      },
    };
  }

  it("allowlist: reaches a listed host through the proxy, nothing else, never the host's loopback", async () => {
    const sh = await shellWithProxy(new NetworkGate("allowlist", [target.address]));
    try {
      const url = `http://${target.address}:${target.port}/`;
      expect(await sh.exec(`curl -sS --max-time 10 ${url}`)).toEqual({
        code: 0,
        out: "inside the test namespace\n",
      });
      // Around the proxy: the tools' namespace has no route out.
      const direct = await sh.exec(`curl -sS --max-time 5 --noproxy '*' ${url}`);
      expect(direct.code).not.toBe(0);
      // The host's own address on the veth: listed or not, the host is never reached.
      const own = target.address.replace(/\.2$/, ".1");
      const other = await sh.exec(`curl -sS --fail --max-time 5 http://${own}:9/`);
      expect(other.out).toContain("403");
      const loopback = await sh.exec(
        `env -u NO_PROXY -u no_proxy curl -sS --max-time 5 --proxy http://127.0.0.1:3128 http://127.0.0.1:${target.port}/`,
      );
      expect(loopback.out).toContain("not in sandbox.allowedHosts");
    } finally {
      await sh.close();
    }
  }, 60_000);
});

describe("network: deny with real OpenCode", () => {
  let env: Env;
  let oc: Awaited<ReturnType<typeof startOpenCode>>;
  beforeAll(async () => {
    env = await startEnv();
    const url = `http://${target.address}:${target.port}/`;
    oc = await startOpenCode(
      [
        {
          name: "curl",
          match: "fetch it",
          steps: [
            {
              toolCalls: [
                {
                  id: "curl",
                  name: "bash",
                  arguments: { command: `curl -sS --max-time 5 ${url}`, description: "curl" },
                },
                {
                  id: "proxy",
                  name: "bash",
                  arguments: {
                    command: `curl -sS --max-time 5 --proxy http://127.0.0.1:3128 ${url}`,
                    description: "p",
                  },
                },
                { id: "webfetch", name: "webfetch", arguments: { url, format: "text" } },
                {
                  id: "write",
                  name: "write",
                  arguments: (ctx) => ({ filePath: `${ctx.workdir}/note.txt`, content: "offline\n" }),
                },
              ],
            },
            { text: "no network here" },
          ],
        },
      ],
      { workspaceRoot: env.workspaceDir, sandbox: { network: "deny" } },
    );
    await startWorker(env, oc.driver);
  }, 60_000);
  afterAll(async () => {
    await env?.close();
    await oc?.close();
  });

  it("reaches nothing, says so to the agent, and the task's other work completes", async () => {
    // The host itself reaches the namespaced server: only the sandbox stands in the way.
    expect(await (await fetch(`http://${target.address}:${target.port}/`)).text()).toBe(
      "inside the test namespace\n",
    );
    await publishTask(env, { taskID: "deny-1", prompt: "fetch it" });
    const result = await waitResult(env, "deny-1", 60_000);
    expect(result.status, JSON.stringify(result)).toBe("completed");
    const ends = new Map(
      (await eventsOf(env, "deny-1"))
        .filter((e) => e.type === "tool_end")
        .map((e) => [e.tool?.callID, e.tool]),
    );
    expect(ends.get("curl")?.exitCode).not.toBe(0);
    expect(ends.get("curl")?.output).not.toContain("inside the test namespace");
    expect(ends.get("proxy")?.exitCode).not.toBe(0);
    expect(ends.get("webfetch")?.status).toBe("error");
    expect(ends.get("webfetch")?.error).toContain("sandbox.network is deny");
    expect(ends.get("write")?.status).toBe("completed");
    expect(result.changes?.files.map((f) => f.path)).toEqual(["note.txt"]);
  }, 90_000);
});
