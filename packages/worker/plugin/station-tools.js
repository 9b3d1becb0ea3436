// OpenCode plugin shipped with @station-coding/worker: gives the model the station tools.
// It holds no NATS connection: every call goes to the worker's loopback bridge, which scopes it
// to the task running in the calling session. Loaded by the worker's managed `opencode serve`.
import { tool } from "@opencode-ai/plugin";

const url = process.env.STATION_TOOLS_URL;
const token = process.env.STATION_TOOLS_TOKEN;

async function call(name, sessionID, args) {
  if (!url || !token) return "station tools are not configured in this OpenCode server";
  const res = await fetch(`${url}/tool`, {
    method: "POST",
    headers: { authorization: `Bearer ${token}`, "content-type": "application/json" },
    body: JSON.stringify({ tool: name, sessionID, args }),
  });
  const body = await res.json().catch(() => ({ error: `HTTP ${res.status}` }));
  if (!res.ok) return `error: ${body.error ?? res.status}`;
  return JSON.stringify(body);
}

/** @type {import("@opencode-ai/plugin").Plugin} */
export const StationTools = async () => ({
  tool: {
    station_kv_get: tool({
      description: "Read a value from this agent's Station context (shared across the agent's tasks).",
      args: { key: tool.schema.string().describe("context key: letters, digits, _ and -") },
      async execute(args, ctx) {
        return call("station_kv_get", ctx.sessionID, args);
      },
    }),
    station_kv_set: tool({
      description: "Store a value in this agent's Station context so later tasks can read it.",
      args: {
        key: tool.schema.string().describe("context key: letters, digits, _ and -"),
        value: tool.schema.any().describe("any JSON value"),
        ttl: tool.schema.number().optional().describe("time to live in milliseconds"),
      },
      async execute(args, ctx) {
        return call("station_kv_set", ctx.sessionID, args);
      },
    }),
    station_session_info: tool({
      description:
        "Describe the current Station coding session: name, OpenCode id, message count, workspace.",
      args: {},
      async execute(_args, ctx) {
        return call("station_session_info", ctx.sessionID, {});
      },
    }),
  },
});
