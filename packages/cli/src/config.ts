import { readFile } from "node:fs/promises";
import { parse } from "yaml";
import { z } from "zod";
import { GatewayConfig } from "@station-coding/gateway/config";
import { CleanupPolicy, ErrorCodes, Name, StationError, parseWith } from "@station-coding/protocol";
import type { CodingNamesOptions } from "@station-coding/protocol";

const Duration = z.union([z.string(), z.number()]);

/** The Station YAML configuration (`coding:` block), plus station-coding's own optional keys. */
export const StationConfig = z
  .object({
    coding: z
      .object({
        backend: z.literal("opencode-nats").optional(),
        nats: z
          .object({
            url: z.string().optional(),
            creds_file: z.string().optional(),
            /** A credentials file per org for a worker serving several orgs (one account each). */
            org_creds: z.record(Name, z.string()).optional(),
            subjects: z
              .object({
                task: z.string().optional(),
                stream: z.string().optional(),
                result: z.string().optional(),
                cancel: z.string().optional(),
              })
              .strict()
              .optional(),
            kv: z
              .object({ sessions: z.string().optional(), state: z.string().optional() })
              .strict()
              .optional(),
            object_store: z.string().optional(),
          })
          .strict()
          .optional(),
        workspace_base_path: z.string().optional(),
        cleanup_policy: CleanupPolicy.optional(),
        git: z
          .object({
            token_env: z.string().optional(),
            user_name: z.string().optional(),
            user_email: z.string().optional(),
            /** User name sent with a token over https (some hosts want `x-token-auth`). */
            username: z.string().optional(),
            allow_http: z.boolean().optional(),
            allow_local_repos: z.boolean().optional(),
            allowed_hosts: z.array(z.string()).optional(),
          })
          .strict()
          .optional(),
        org: Name.optional(),
        /** The orgs `status --all-orgs` reads (the operator's config, written by `station-coding org`). */
        orgs: z.array(Name).optional(),
        /** Result authenticity: the public keys of the workers whose signed results are accepted. */
        results: z
          .object({ signers: z.array(z.string()).optional() })
          .strict()
          .optional(),
        worker: z
          .object({
            concurrency: z.number().int().positive().optional(),
            ack_wait: Duration.optional(),
            task_timeout: Duration.optional(),
            max_attempts: z.number().int().positive().optional(),
            shutdown_grace: Duration.optional(),
            /** File with a user nkey seed that signs results (when the NATS credentials have none). */
            result_signing_key: z.string().optional(),
            /** `HOST:PORT` serving /metrics and /healthz (`--metrics-listen`). */
            metrics_listen: z.string().optional(),
          })
          .strict()
          .optional(),
        /** The agent's OS sandbox: `off`, or its settings (docs/security.md). */
        sandbox: z
          .union([
            z.enum(["on", "off"]),
            z
              .object({
                mode: z.enum(["on", "off"]).optional(),
                network: z.enum(["allow", "deny", "allowlist"]).optional(),
                allowed_hosts: z.array(z.string()).optional(),
                read_only_paths: z.array(z.string()).optional(),
              })
              .strict(),
          ])
          .optional(),
        opencode: z
          .object({
            url: z.string().optional(),
            password_env: z.string().optional(),
            config_file: z.string().optional(),
          })
          .strict()
          .optional(),
      })
      .strict(),
    /** The HTTP/SSE gateway of `station-coding serve` (docs/gateway.md). */
    gateway: GatewayConfig.optional(),
  })
  .strict();
/** The Station YAML configuration. */
export type StationConfig = z.infer<typeof StationConfig>;

/** Reads and validates a station.yaml; errors name the file and the key. */
export async function loadConfig(path: string): Promise<StationConfig> {
  let text: string;
  try {
    text = await readFile(path, "utf8");
  } catch {
    throw new StationError(ErrorCodes.InvalidConfig, `config file ${path}: cannot be read`);
  }
  let raw: unknown;
  try {
    raw = parse(text);
  } catch (err) {
    throw new StationError(
      ErrorCodes.InvalidConfig,
      `config file ${path}: not valid YAML (${(err as Error).message})`,
    );
  }
  try {
    return parseWith(StationConfig, raw ?? {}, "config", ErrorCodes.InvalidConfig);
  } catch (err) {
    throw new StationError(ErrorCodes.InvalidConfig, `config file ${path}: ${(err as Error).message}`);
  }
}

/** Name overrides a config asks for. */
export function namesFromConfig(config: StationConfig | undefined): Omit<CodingNamesOptions, "org"> {
  const nats = config?.coding.nats;
  const subjects = nats?.subjects;
  return {
    ...(subjects ? { subjects: { ...subjects } } : {}),
    ...(nats?.kv ? { kv: { ...nats.kv } } : {}),
    ...(nats?.object_store ? { objectStore: nats.object_store } : {}),
  };
}
