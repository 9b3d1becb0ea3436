import { Name } from "@station-coding/protocol";
import { z } from "zod";

const Sha256Hex = z
  .string()
  .regex(/^[0-9a-fA-F]{64}$/, "must be the hex SHA-256 of the token (64 hex digits)");
const EnvName = z.string().regex(/^[A-Za-z_][A-Za-z0-9_]*$/, "must be an environment variable name");
const Duration = z.union([z.number().nonnegative(), z.string().min(1)]);

/** What a token may do: `viewer` reads, `operator` also submits, cancels and replays, `admin` does so in every org. */
export const GatewayRole = z.enum(["viewer", "operator", "admin"]);
/** What a token may do. */
export type GatewayRole = z.infer<typeof GatewayRole>;

/** How a caller proves itself: the SHA-256 of the token, or the variable holding the token itself. */
const Secret = z
  .object({
    /** Hex SHA-256 of the token (`printf %s "$TOKEN" | sha256sum`). */
    sha256: Sha256Hex.optional(),
    /** Environment variable that holds the token. */
    tokenEnv: EnvName.optional(),
  })
  .strict()
  .refine((t) => (t.sha256 === undefined) !== (t.tokenEnv === undefined), {
    message: "give exactly one of sha256 and tokenEnv",
  });

/** One bearer token of the gateway (station.yaml `gateway.tokens[]`). */
export const GatewayTokenConfig = z
  .object({
    /** Shown in logs and metrics, never the token. */
    name: Name,
    sha256: Sha256Hex.optional(),
    tokenEnv: EnvName.optional(),
    /** The org the token sees; omitted in single-tenant mode and for admins. */
    org: Name.optional(),
    role: GatewayRole,
  })
  .strict()
  .refine((t) => (t.sha256 === undefined) !== (t.tokenEnv === undefined), {
    message: "give exactly one of sha256 and tokenEnv",
  });
/** One bearer token of the gateway. */
export type GatewayTokenConfig = z.infer<typeof GatewayTokenConfig>;

/** The `gateway:` section of station.yaml (every key optional; see docs/gateway.md). */
export const GatewayConfig = z
  .object({
    /** `HOST:PORT` to listen on. @default "127.0.0.1:8080" */
    listen: z.string().min(1).optional(),
    tokens: z.array(GatewayTokenConfig).optional(),
    /** Per-token request rate: `rps` refilled per second, up to `burst`. @default { rps: 20, burst: 100 } */
    rateLimit: z
      .object({ rps: z.number().positive().optional(), burst: z.number().int().positive().optional() })
      .strict()
      .optional(),
    /** Largest request body in bytes. @default 1 MiB */
    maxBodyBytes: z.number().int().positive().optional(),
    /** A token `/metrics` asks for; without it `/metrics` is open. */
    metricsToken: Secret.optional(),
    /** Interval of the SSE heartbeat comments. @default "15s" */
    heartbeat: Duration.optional(),
    /** Longest `?wait=` of a result long-poll. @default "5m" */
    maxWait: Duration.optional(),
    /**
     * Event streams and result long-polls: how many one token and the whole gateway may hold open,
     * and how long a client that stopped reading keeps its stream.
     * @default { perToken: 32, total: 1000, stall: "30s" }
     */
    streams: z
      .object({
        perToken: z.number().int().positive().optional(),
        total: z.number().int().positive().optional(),
        stall: Duration.optional(),
      })
      .strict()
      .optional(),
  })
  .strict();
/** The `gateway:` section of station.yaml. */
export type GatewayConfig = z.infer<typeof GatewayConfig>;
