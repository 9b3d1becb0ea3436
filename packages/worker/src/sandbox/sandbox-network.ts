import { lookup } from "node:dns/promises";
import { createServer, request as httpRequest } from "node:http";
import type { IncomingMessage, Server, ServerResponse } from "node:http";
import { BlockList, connect, isIP } from "node:net";
import { networkInterfaces } from "node:os";
import type { Socket } from "node:net";
import { rm } from "node:fs/promises";
import type { Duplex } from "node:stream";
import type { Logger } from "pino";
import type { NetworkPolicy } from "./sandbox.js";

/** Addresses that are never reachable from a tool: the host itself and what only it should reach. */
const HOST_ONLY = new BlockList();
HOST_ONLY.addSubnet("127.0.0.0", 8, "ipv4");
HOST_ONLY.addSubnet("0.0.0.0", 8, "ipv4");
HOST_ONLY.addAddress("::1", "ipv6");
HOST_ONLY.addAddress("::", "ipv6");
HOST_ONLY.addSubnet("::ffff:127.0.0.0", 104, "ipv6");
HOST_ONLY.addSubnet("::ffff:0.0.0.0", 104, "ipv6");

/** Private, link-local (cloud metadata), shared and multicast ranges: reachable only when allowlisted. */
const INTERNAL = new BlockList();
for (const [net, prefix] of [
  ["10.0.0.0", 8],
  ["172.16.0.0", 12],
  ["192.168.0.0", 16],
  ["169.254.0.0", 16],
  ["100.64.0.0", 10],
  ["192.0.0.0", 24],
  ["198.18.0.0", 15],
  ["224.0.0.0", 4],
  ["240.0.0.0", 4],
] as const) {
  INTERNAL.addSubnet(net, prefix, "ipv4");
  INTERNAL.addSubnet(`::ffff:${net}`, 96 + prefix, "ipv6");
}
INTERNAL.addSubnet("fc00::", 7, "ipv6");
INTERNAL.addSubnet("fe80::", 10, "ipv6");
INTERNAL.addSubnet("ff00::", 8, "ipv6");

/** What a tool asked to reach and whether it may. */
export type NetworkDecision =
  { allowed: true; address: string; family: 4 | 6 } | { allowed: false; reason: string };

/** Resolves host names (injectable for tests). */
export type Resolver = (host: string) => Promise<{ address: string; family: number }[]>;

const systemResolver: Resolver = (host) => lookup(host, { all: true, verbatim: true });

/**
 * The network policy of the agent's tools, applied to every connection the worker's proxy makes
 * for them and to OpenCode's webfetch: `deny` refuses all; `allowlist` only the listed hosts
 * (`*.example.com` matches subdomains); `allow` any public address. Loopback and unspecified
 * addresses are refused whatever the policy (the worker's own services listen there); private,
 * link-local and metadata addresses only pass when the allowlist names the host or address.
 * The host's own interface addresses count as loopback. The address that was checked is the one
 * connected to, so DNS cannot change it in between.
 */
export class NetworkGate {
  private readonly allowed: string[];

  /** The host's own addresses (every interface): its services listen there too. */
  private readonly own = new BlockList();

  constructor(
    readonly policy: NetworkPolicy,
    allowedHosts: readonly string[] = [],
    private readonly resolve: Resolver = systemResolver,
  ) {
    this.allowed = allowedHosts.map((h) => normalizeHost(h));
    for (const list of Object.values(networkInterfaces())) {
      for (const nic of list ?? []) this.own.addAddress(nic.address, nic.family === "IPv6" ? "ipv6" : "ipv4");
    }
  }

  /** Decides a connection to `host` (a name or an IP literal, brackets allowed). */
  async decide(rawHost: string): Promise<NetworkDecision> {
    const host = normalizeHost(rawHost);
    if (this.policy === "deny") return { allowed: false, reason: "sandbox.network is deny" };
    const listed = this.isListed(host);
    if (this.policy === "allowlist" && !listed) {
      return { allowed: false, reason: `${host} is not in sandbox.allowedHosts` };
    }
    let addresses: { address: string; family: number }[];
    if (isIP(host)) addresses = [{ address: host, family: isIP(host) }];
    else {
      try {
        addresses = await this.resolve(host);
      } catch {
        return { allowed: false, reason: `${host} could not be resolved` };
      }
    }
    if (addresses.length === 0) return { allowed: false, reason: `${host} could not be resolved` };
    for (const { address, family } of addresses) {
      const type = family === 6 ? "ipv6" : "ipv4";
      if (HOST_ONLY.check(address, type) || this.own.check(address, type)) {
        return {
          allowed: false,
          reason: `${host} is the worker's own host (${address}); tools never reach it`,
        };
      }
      if (INTERNAL.check(address, type) && !listed) {
        return {
          allowed: false,
          reason: `${host} is an internal address (${address}); name it in sandbox.allowedHosts to allow it`,
        };
      }
    }
    const first = addresses[0]!;
    return { allowed: true, address: first.address, family: first.family === 6 ? 6 : 4 };
  }

  private isListed(host: string): boolean {
    return this.allowed.some((entry) =>
      entry.startsWith("*.")
        ? host.endsWith(entry.slice(1)) && host.length > entry.length - 1
        : host === entry,
    );
  }
}

function normalizeHost(host: string): string {
  return host
    .trim()
    .toLowerCase()
    .replace(/^\[(.*)\]$/, "$1")
    .replace(/\.$/, "");
}

/**
 * The HTTP proxy the agent's tools reach the network through, on a Unix socket that only the
 * tools' sandboxes see (inside, a forwarder listens on their own loopback port). It speaks
 * `CONNECT host:port` (https, any TCP) and plain `GET http://…` requests, and asks the
 * {@link NetworkGate} before every connection; a refusal is a 403 whose text says why.
 */
export class SandboxProxy {
  private server: Server | undefined;
  private readonly sockets = new Set<Socket | Duplex>();

  constructor(
    readonly socketPath: string,
    private readonly gate: NetworkGate,
    private readonly logger: Logger,
  ) {}

  /** Starts listening on the socket (replacing a stale one). */
  async start(): Promise<void> {
    await rm(this.socketPath, { force: true });
    const server = createServer((req, res) => void this.forward(req, res));
    server.on(
      "connect",
      (req: IncomingMessage, client: Duplex, head: Buffer) => void this.tunnel(req, client, head),
    );
    server.on("connection", (socket: Socket) => {
      this.sockets.add(socket);
      socket.once("close", () => this.sockets.delete(socket));
    });
    await new Promise<void>((resolve, reject) => {
      server.once("error", reject);
      server.listen(this.socketPath, () => resolve());
    });
    this.server = server;
  }

  /** Stops listening and closes every open connection. */
  async stop(): Promise<void> {
    for (const socket of this.sockets) socket.destroy();
    await new Promise<void>((resolve) => (this.server ? this.server.close(() => resolve()) : resolve()));
    await rm(this.socketPath, { force: true });
  }

  private refuse(client: Duplex, host: string, reason: string): void {
    this.logger.info({ host, reason }, "sandbox network: connection refused");
    const body = `station sandbox: connection to ${host} refused: ${reason}\n`;
    client.end(
      `HTTP/1.1 403 Forbidden\r\ncontent-type: text/plain\r\ncontent-length: ${Buffer.byteLength(body)}\r\nconnection: close\r\n\r\n${body}`,
    );
  }

  private async tunnel(req: IncomingMessage, client: Duplex, head: Buffer): Promise<void> {
    client.on("error", () => undefined);
    const target = parseAuthority(req.url ?? "");
    if (!target) return this.refuse(client, req.url ?? "", "not a host:port");
    const decision = await this.gate.decide(target.host);
    if (!decision.allowed) return this.refuse(client, target.host, decision.reason);
    const upstream = connect({ host: decision.address, port: target.port, family: decision.family });
    this.sockets.add(upstream);
    upstream.once("close", () => this.sockets.delete(upstream));
    upstream.once("connect", () => {
      client.write("HTTP/1.1 200 Connection Established\r\n\r\n");
      if (head.length > 0) upstream.write(head);
      upstream.pipe(client);
      client.pipe(upstream);
    });
    upstream.on("error", (err) => {
      if (!client.writableEnded) {
        client.end(`HTTP/1.1 502 Bad Gateway\r\nconnection: close\r\n\r\nstation sandbox: ${err.message}\n`);
      }
    });
  }

  private async forward(req: IncomingMessage, res: ServerResponse): Promise<void> {
    let url: URL;
    try {
      url = new URL(req.url ?? "");
    } catch {
      res
        .writeHead(400, { "content-type": "text/plain" })
        .end("station sandbox: the proxy needs absolute URLs\n");
      return;
    }
    if (url.protocol !== "http:") {
      res.writeHead(400, { "content-type": "text/plain" }).end("station sandbox: use CONNECT for https\n");
      return;
    }
    const decision = await this.gate.decide(url.hostname);
    if (!decision.allowed) {
      this.logger.info({ host: url.hostname, reason: decision.reason }, "sandbox network: request refused");
      res
        .writeHead(403, { "content-type": "text/plain" })
        .end(`station sandbox: connection to ${url.hostname} refused: ${decision.reason}\n`);
      return;
    }
    const upstream = httpRequest(
      {
        host: decision.address,
        family: decision.family,
        port: url.port === "" ? 80 : Number(url.port),
        method: req.method,
        path: `${url.pathname}${url.search}`,
        headers: { ...req.headers, host: url.host },
      },
      (answer) => {
        res.writeHead(answer.statusCode ?? 502, answer.headers);
        answer.pipe(res);
      },
    );
    upstream.on("error", (err) => {
      if (!res.headersSent) res.writeHead(502, { "content-type": "text/plain" });
      res.end(`station sandbox: ${err.message}\n`);
    });
    req.pipe(upstream);
  }
}

/** Splits `host:port` / `[v6]:port`; undefined when malformed. */
function parseAuthority(authority: string): { host: string; port: number } | undefined {
  const match = /^(?:\[([^\]]+)\]|([^:[\]]+)):(\d{1,5})$/.exec(authority);
  if (!match) return undefined;
  const port = Number(match[3]);
  if (port < 1 || port > 65535) return undefined;
  return { host: (match[1] ?? match[2])!, port };
}
