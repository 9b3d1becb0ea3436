// OpenCode plugin shipped with @station-coding/worker: gives the model the station tools and,
// with the sandbox on, guards the agent's tools.
// It holds no NATS connection: every call goes to the worker's loopback bridge, which scopes it
// to the task running in the calling session. Loaded by the worker's managed `opencode serve`.
import { tool } from "@opencode-ai/plugin";

const url = process.env.STATION_TOOLS_URL;
const token = process.env.STATION_TOOLS_TOKEN;
const sandboxed = process.env.STATION_SANDBOX === "on";

async function post(name, sessionID, args) {
  const res = await fetch(`${url}/tool`, {
    method: "POST",
    headers: { authorization: `Bearer ${token}`, "content-type": "application/json" },
    body: JSON.stringify({ tool: name, sessionID, args }),
    // The sandbox check answers once the call holds its workspace, which can take as long as a
    // bash call runs: no client-side time limit (Bun's fetch would give up after 5 minutes).
    timeout: false,
  });
  const body = await res.json().catch(() => ({ error: `HTTP ${res.status}` }));
  return { status: res.status, body };
}

async function call(name, sessionID, args) {
  if (!url || !token) return "station tools are not configured in this OpenCode server";
  const { status, body } = await post(name, sessionID, args);
  if (status !== 200) return `error: ${body.error ?? status}`;
  return JSON.stringify(body);
}

/**
 * The station task a session belongs to: its own, or for a subagent's session that of the nearest
 * ancestor the worker knows: `{ id, workspace }`. Undefined when none is known (callers refuse).
 */
async function taskOf(client, sessionID) {
  let id = sessionID;
  for (let depth = 0; id && depth < 8; depth += 1) {
    const { status, body } = await post("station_sandbox_scope", id, {});
    if (status === 200 && typeof body.workspace === "string") return { id, workspace: body.workspace };
    if (status !== 404) return undefined;
    const session = await client.session.get({ path: { id } }).catch(() => undefined);
    id = session?.data?.parentID;
  }
  return undefined;
}

/** @type {import("@opencode-ai/plugin").Plugin} */
export const StationTools = async ({ client }) => ({
  ...(sandboxed ? sandboxHooks(client) : {}),
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

/**
 * Hooks of the sandbox. `shell.env` tells the sandboxing shell which workspace the calling
 * session's task owns (the shell refuses to run without it); `tool.execute.before` has the worker
 * check every tool call (file paths after symbolic links, webfetch against the network policy)
 * and turns a refusal into the tool's error, which the agent sees. Both fail closed. The worker
 * answers the check once the call holds its workspace (bash alone, file tools together), and
 * `tool.execute.after` lets go of it; for calls that throw, the worker sees them end on OpenCode's
 * event stream instead.
 */
function sandboxHooks(client) {
  return {
    "shell.env": async (input, output) => {
      const task = await taskOf(client, input.sessionID).catch(() => undefined);
      if (task) output.env.STATION_SANDBOX_WORKSPACE = task.workspace;
      // Names the call on its sandbox's command line, where the worker finds what still runs of it.
      if (input.callID)
        output.env.STATION_SANDBOX_CALL = Buffer.from(`${input.sessionID}/${input.callID}`).toString("hex");
    },
    "tool.execute.before": async (input, output) => {
      const task = await taskOf(client, input.sessionID).catch(() => undefined);
      if (!task)
        throw new Error(`station sandbox: ${input.tool} refused: no station task runs in this session`);
      // The task tool resumes any session named by task_id (OpenCode does not check whose): only a
      // subagent session of this task may be resumed, never another task's or another org's.
      const resumed = input.tool === "task" ? output.args?.task_id : undefined;
      if (resumed !== undefined && resumed !== "") {
        const owner = await taskOf(client, String(resumed)).catch(() => undefined);
        if (owner?.id !== task.id || String(resumed) === task.id)
          throw new Error(
            `station sandbox: task refused: task_id ${JSON.stringify(resumed)} is not a subagent session of this task`,
          );
      }
      const { status, body } = await post("station_sandbox_check", task.id, {
        tool: input.tool,
        callID: input.callID,
        session: input.sessionID,
        args: output.args,
      });
      if (status !== 200) throw new Error(`station sandbox: ${input.tool} refused: ${body.error ?? status}`);
      if (body.refusal) throw new Error(body.refusal);
    },
    "tool.execute.after": async (input) => {
      // Not awaited: letting go late is safe, and the tool's answer need not wait for it.
      post("station_sandbox_release", input.sessionID, {
        session: input.sessionID,
        callID: input.callID,
      }).catch(() => undefined);
    },
  };
}
