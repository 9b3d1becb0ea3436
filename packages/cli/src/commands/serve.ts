import type { Command } from "commander";
import type { NatsConnection } from "@nats-io/transport-node";
import { CodingDispatcher } from "@station-coding/dispatcher";
import type { Gateway, GatewayNamespace } from "@station-coding/gateway";
import { codingNames, validateName } from "@station-coding/protocol";
import { pino } from "pino";
import { namesFromConfig } from "../config.js";
import type { CommonFlags, Connection, Run } from "../context.js";
import { UsageError, connectionFrom } from "../context.js";
import { connectNats, resultSigners } from "../dispatcher-connection.js";

interface ServeFlags extends CommonFlags {
  listen?: string;
}

/**
 * The orgs a gateway serves: every org its tokens name, plus `--org` (a comma-separated list) or
 * `coding.org`, plus `coding.orgs` when it has admin tokens; none means single-tenant.
 */
export function servedOrgs(connection: Connection, flagsOrg: string | undefined): string[] {
  const gateway = connection.config?.gateway;
  const tokens = gateway?.tokens ?? [];
  const orgs = new Set<string>();
  for (const t of tokens) if (t.org !== undefined) orgs.add(t.org);
  for (const org of (flagsOrg ?? connection.org ?? "").split(",").map((o) => o.trim()))
    if (org) orgs.add(org);
  if (tokens.some((t) => t.role === "admin"))
    for (const org of connection.config?.coding.orgs ?? []) orgs.add(org);
  for (const org of orgs) {
    try {
      validateName("org", org);
    } catch (err) {
      throw new UsageError((err as Error).message);
    }
  }
  return [...orgs].sort();
}

/** `station-coding serve`: the HTTP/SSE gateway (docs/gateway.md). */
export function registerServe(program: Command, run: Run): void {
  program
    .command("serve")
    .description("run the HTTP/SSE gateway: submit, follow and inspect tasks over HTTP (docs/gateway.md)")
    .option("--listen <host:port>", "address to listen on (gateway.listen; default 127.0.0.1:8080)")
    .action((_opts: unknown, cmd: Command) =>
      run(async () => {
        const flags = cmd.optsWithGlobals<ServeFlags>();
        // Loaded here so that the other commands never load the HTTP stack.
        const { DEFAULT_LISTEN, Gateway, closeNamespace, openNamespace, parseListen } =
          await import("@station-coding/gateway");
        const connection = await connectionFrom({ ...flags, org: undefined });
        const gatewayConfig = connection.config?.gateway ?? {};
        // Without configured tokens, STATION_GATEWAY_TOKEN is the one operator token (compose's service).
        const tokens =
          gatewayConfig.tokens ??
          (process.env.STATION_GATEWAY_TOKEN
            ? [{ name: "default", tokenEnv: "STATION_GATEWAY_TOKEN", role: "operator" as const }]
            : []);
        if (tokens.length === 0) {
          throw new UsageError(
            "serve: no tokens: add gateway.tokens to station.yaml (name, sha256 or tokenEnv, role) and pass --config, or set STATION_GATEWAY_TOKEN",
          );
        }
        const listen = flags.listen ?? gatewayConfig.listen ?? DEFAULT_LISTEN;
        try {
          parseListen(listen);
        } catch (err) {
          throw new UsageError(`--listen: ${(err as Error).message}`);
        }
        const orgs = servedOrgs(connection, flags.org);
        const logger = pino(
          { level: process.env.LOG_LEVEL ?? "info", name: "station-coding-gateway" },
          pino.destination({ dest: 2, sync: true }),
        );
        const namespaces: GatewayNamespace[] = [];
        const dispatchers: CodingDispatcher[] = [];
        const connections: NatsConnection[] = [];
        const closeAll = async () => {
          await Promise.all(namespaces.map((ns) => closeNamespace(ns)));
          await Promise.all(dispatchers.map((d) => d.close()));
          await Promise.all(connections.map((nc) => nc.close().catch(() => undefined)));
        };
        let gateway: Gateway;
        try {
          for (const org of orgs.length > 0 ? orgs : [undefined]) {
            const creds = org !== undefined ? connection.config?.coding.nats?.org_creds?.[org] : undefined;
            const conn = { ...connection, ...(creds !== undefined ? { creds } : {}) };
            const names = codingNames({
              ...namesFromConfig(connection.config),
              ...(org !== undefined ? { org } : {}),
            });
            const nc = await connectNats(conn, names.inboxPrefix, "follow");
            connections.push(nc);
            const dispatcher = await CodingDispatcher.connect({
              connection: nc,
              names: namesFromConfig(connection.config),
              ...(org !== undefined ? { org } : {}),
              name: "station-coding-gateway",
              logger,
              trustedSigners: resultSigners(connection),
            });
            dispatchers.push(dispatcher);
            namespaces.push(await openNamespace(dispatcher, logger));
          }
          gateway = Gateway.create({ ...gatewayConfig, namespaces, tokens, logger });
        } catch (err) {
          await closeAll();
          throw err;
        }
        const { url } = await gateway.listen(listen).catch(async (err: unknown) => {
          await closeAll();
          throw new UsageError(`--listen ${listen}: ${(err as Error).message}`);
        });
        process.stdout.write(
          `station-coding gateway listening on ${url} (${orgs.length > 0 ? `orgs ${orgs.join(", ")}` : "single-tenant"}; ${tokens.length} token(s))\n`,
        );
        await new Promise<void>((resolve) => {
          const stop = () => resolve();
          process.once("SIGINT", stop);
          process.once("SIGTERM", stop);
        });
        await gateway.close();
        await closeAll();
        return 0;
      }),
    );
}
