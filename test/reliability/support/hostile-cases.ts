// The hostile messages of scenario 6: each is sent raw, as any NATS client could, with what it
// must lead to.
import { MAX_PROMPT_LENGTH } from "@station-coding/protocol";

/** What a hostile message must lead to. */
export type Expectation =
  /** An error result for `taskID` with `code`, whose message names `field`. */
  | { kind: "error"; taskID: string; code: string; field: string }
  /** No recoverable taskID: no result anywhere, and the message is removed from the queue. */
  | { kind: "dropped" }
  /** The server refuses the publish; `reason` matches its answer. */
  | { kind: "refused"; reason: RegExp }
  /** Harmless after all: the task runs and completes. */
  | { kind: "completed"; taskID: string }
  /** Stored, and nothing else happens (no worker reacts, nothing breaks). */
  | { kind: "ignored" };

/** One hostile message. */
export interface HostileCase {
  name: string;
  /** Subject relative to the single-tenant root, e.g. "task" or "cancel.x". @default "task" */
  subject?: string;
  payload: string | Uint8Array;
  expect: Expectation;
}

const ok = "echo";
const task = (taskID: string, extra: Record<string, unknown> = {}) =>
  JSON.stringify({ taskID, prompt: ok, ...extra });
const error = (taskID: string, field: string, code = "INVALID_TASK"): Expectation => ({
  kind: "error",
  taskID,
  code,
  field,
});
const gitCase = (
  id: string,
  git: Record<string, unknown>,
  field: string,
  code = "GIT_REFUSED",
): HostileCase => ({
  name: `git ${Object.entries(git)
    .map(([k, v]) => `${k}=${JSON.stringify(v)}`)
    .join(" ")}`,
  payload: task(id, { workspace: { git: { url: "https://example.com/repo.git", ...git } } }),
  expect: error(id, field, code),
});

/** Every hostile message the scenario sends (payloads over the size limits are built separately). */
export function hostileCases(): HostileCase[] {
  const deep = `${"[".repeat(100_000)}${"]".repeat(100_000)}`;
  return [
    // Malformed JSON and wrong shapes: no taskID can be recovered.
    { name: "not JSON", payload: '{"taskID": "h-broken", "prompt": ', expect: { kind: "dropped" } },
    { name: "JSON array", payload: '[{"taskID":"h-array","prompt":"x"}]', expect: { kind: "dropped" } },
    { name: "JSON string", payload: '"h-string"', expect: { kind: "dropped" } },
    { name: "JSON null", payload: "null", expect: { kind: "dropped" } },
    { name: "empty payload", payload: "", expect: { kind: "dropped" } },
    { name: "binary garbage", payload: new Uint8Array([0, 255, 1, 254, 0x7b]), expect: { kind: "dropped" } },
    { name: "taskID a number", payload: '{"taskID": 42, "prompt": "x"}', expect: { kind: "dropped" } },
    // Wrong types with a recoverable taskID: an error result naming the field.
    {
      name: "prompt a number",
      payload: task("h-prompt-type", { prompt: 123 }),
      expect: error("h-prompt-type", "prompt"),
    },
    { name: "prompt missing", payload: '{"taskID":"h-no-prompt"}', expect: error("h-no-prompt", "prompt") },
    { name: "prompt blank", payload: task("h-blank", { prompt: "   " }), expect: error("h-blank", "prompt") },
    {
      name: "session a string",
      payload: task("h-session-type", { session: "s1" }),
      expect: error("h-session-type", "session"),
    },
    {
      name: "timeout negative",
      payload: task("h-timeout", { timeout: -5 }),
      expect: error("h-timeout", "timeout"),
    },
    {
      name: "timeout a string",
      payload: task("h-timeout-s", { timeout: "10m" }),
      expect: error("h-timeout-s", "timeout"),
    },
    { name: "op unknown", payload: task("h-op", { op: "rm -rf /" }), expect: error("h-op", "op") },
    { name: "model a string", payload: task("h-model", { model: "gpt" }), expect: error("h-model", "model") },
    {
      name: "metadata non-string",
      payload: task("h-meta", { metadata: { a: 1 } }),
      expect: error("h-meta", "metadata.a"),
    },
    {
      name: "deeply nested JSON (100k levels)",
      payload: `{"taskID":"h-deep","prompt":"x","metadata":{"a":${deep}}}`,
      expect: error("h-deep", "metadata.a"),
    },
    {
      name: "commit op without commit",
      payload: task("h-commit", { op: "commit" }),
      expect: error("h-commit", "commit"),
    },
    // Control characters.
    { name: "taskID with NUL", payload: task("h-nul\u0000x"), expect: { kind: "dropped" } },
    { name: "taskID with a line break", payload: task("h-line\r\nPUB x 1"), expect: { kind: "dropped" } },
    {
      name: "session.name with BEL",
      payload: task("h-ctl-session", { session: { name: "s\u0007" } }),
      expect: error("h-ctl-session", "session.name"),
    },
    {
      name: "prompt with control characters and ANSI escapes",
      payload: task("h-ctl-prompt", { prompt: "hello \u0000\u001b[31mred\u001b[0m \u202etxt.exe" }),
      expect: { kind: "completed", taskID: "h-ctl-prompt" },
    },
    // Wildcards and path tokens in every name.
    { name: "taskID with *", payload: task("h-star*"), expect: { kind: "dropped" } },
    { name: "taskID >", payload: task(">"), expect: { kind: "dropped" } },
    { name: "taskID with dots", payload: task("h.dot.token"), expect: { kind: "dropped" } },
    { name: "taskID ../", payload: task("../h-escape"), expect: { kind: "dropped" } },
    { name: "taskID starting with -", payload: task("-h-dash"), expect: { kind: "dropped" } },
    { name: "taskID of 129 characters", payload: task(`h${"x".repeat(128)}`), expect: { kind: "dropped" } },
    { name: "taskID non-ASCII", payload: task("h-ü"), expect: { kind: "dropped" } },
    {
      name: "session.name h.>",
      payload: task("h-s-wild", { session: { name: "h.>" } }),
      expect: error("h-s-wild", "session.name"),
    },
    {
      name: "session.name ../../etc",
      payload: task("h-s-path", { session: { name: "../../etc" } }),
      expect: error("h-s-path", "session.name"),
    },
    {
      name: "workspace.name ../outside",
      payload: task("h-w-path", { workspace: { name: "../outside" } }),
      expect: error("h-w-path", "workspace.name"),
    },
    {
      name: "workspace.name /etc",
      payload: task("h-w-abs", { workspace: { name: "/etc" } }),
      expect: error("h-w-abs", "workspace.name"),
    },
    {
      name: "workspace.name *",
      payload: task("h-w-star", { workspace: { name: "*" } }),
      expect: error("h-w-star", "workspace.name"),
    },
    {
      name: "workspace.scopeID a>b",
      payload: task("h-scope", { workspace: { scope: "workflow", scopeID: "a>b" } }),
      expect: error("h-scope", "workspace.scopeID"),
    },
    {
      name: "org evil.>",
      payload: task("h-org-wild", { org: "evil.>" }),
      expect: error("h-org-wild", "org"),
    },
    {
      name: "org of another namespace",
      payload: task("h-org-other", { org: "globex" }),
      expect: error("h-org-other", "org"),
    },
    {
      name: "agentID agent.*",
      payload: task("h-agent-wild", { agentID: "agent.*" }),
      expect: error("h-agent-wild", "agentID"),
    },
    {
      name: "agentID ../a",
      payload: task("h-agent-path", { agentID: "../a" }),
      expect: error("h-agent-path", "agentID"),
    },
    {
      name: "inputs ../../etc/passwd",
      payload: task("h-in-path", { inputs: ["../../etc/passwd"] }),
      expect: error("h-in-path", "inputs.0"),
    },
    {
      name: "inputs .env",
      payload: task("h-in-dot", { inputs: [".env"] }),
      expect: error("h-in-dot", "inputs.0"),
    },
    {
      name: "inputs a/b.txt",
      payload: task("h-in-slash", { inputs: ["ok.txt", "a/b.txt"] }),
      expect: error("h-in-slash", "inputs.1"),
    },
    {
      name: "inputs -rf",
      payload: task("h-in-dash", { inputs: ["-rf"] }),
      expect: error("h-in-dash", "inputs.0"),
    },
    {
      name: "callback.resultSubject of another task",
      payload: task("h-cb-result", { callback: { resultSubject: "station.coding.result.good-0" } }),
      expect: error("h-cb-result", "callback.resultSubject"),
    },
    {
      name: "callback.streamSubject >",
      payload: task("h-cb-stream", { callback: { streamSubject: ">" } }),
      expect: error("h-cb-stream", "callback.streamSubject"),
    },
    // Hostile git URLs and refs.
    gitCase("h-git-ext", { url: "ext::sh -c touch% /tmp/pwned" }, "workspace.git.url"),
    gitCase("h-git-fd", { url: "fd::17" }, "workspace.git.url"),
    gitCase(
      "h-git-upload-pack",
      { url: "--upload-pack=touch /tmp/pwned" },
      "workspace.git.url",
      "INVALID_TASK",
    ),
    gitCase("h-git-file", { url: "file:///etc" }, "workspace.git.url"),
    gitCase("h-git-local", { url: "/etc" }, "workspace.git.url"),
    gitCase("h-git-creds", { url: "https://user:hunter2@example.com/r.git" }, "workspace.git.url"),
    gitCase("h-git-http", { url: "http://example.com/r.git" }, "workspace.git.url"),
    gitCase("h-git-proto", { url: "git://example.com/r.git" }, "workspace.git.url"),
    gitCase("h-git-ssh-opt", { url: "ssh://-oProxyCommand=touch%20x/r.git" }, "workspace.git.url"),
    gitCase("h-git-ctl", { url: "https://example.com/r.git\n--x" }, "workspace.git.url", "INVALID_TASK"),
    gitCase("h-git-branch-opt", { branch: "--upload-pack=x" }, "workspace.git.branch", "INVALID_TASK"),
    gitCase("h-git-ref-dotdot", { ref: "main..evil" }, "workspace.git.ref"),
    gitCase("h-git-ref-dash", { ref: "-x" }, "workspace.git.ref", "INVALID_TASK"),
    gitCase("h-git-branch-path", { branch: "a/../b" }, "workspace.git.branch"),
    gitCase("h-git-ref-reflog", { ref: "HEAD@{1}" }, "workspace.git.ref"),
    gitCase("h-git-sparse", { sparse: ["../x"] }, "workspace.git.sparse[0]"),
    // Size: a prompt over MAX_PROMPT_LENGTH still fits in a message.
    {
      name: `prompt of ${MAX_PROMPT_LENGTH + 1} characters`,
      payload: task("h-huge-prompt", { prompt: "x".repeat(MAX_PROMPT_LENGTH + 1) }),
      expect: error("h-huge-prompt", "prompt"),
    },
    // Prototype pollution attempts are plain unknown fields.
    {
      name: "__proto__ and constructor.prototype fields",
      payload:
        '{"taskID":"h-proto","prompt":"x","__proto__":{"polluted":"yes"},"constructor":{"prototype":{"polluted2":"yes"}}}',
      expect: { kind: "completed", taskID: "h-proto" },
    },
    // Cancels for tasks that do not exist.
    {
      name: "cancel of an unknown task",
      subject: "cancel.h-nobody",
      payload: '{"taskID":"h-nobody"}',
      expect: { kind: "ignored" },
    },
    {
      name: "cancel with a garbage body",
      subject: "cancel.h-garbage",
      payload: "\u0000garbage",
      expect: { kind: "ignored" },
    },
    // A subject no stream stores: no PubAck comes (only the suite's wiretap listens there).
    {
      name: "task on a subject below the task subject",
      subject: "task.extra",
      payload: task("h-subject"),
      expect: { kind: "refused", reason: /timeout|503|no responders/i },
    },
  ];
}
