// The story of a run, made of its stream events: consecutive text (and thinking) joined into one
// block, each tool call one entry from its start to its end, permission decisions, git steps, and
// one line for everything else. Pure functions: the page renders what they return.

/** A new, empty story. */
export function emptyStory() {
  return { items: [], tools: new Map(), lastSeq: 0 };
}

const GIT_TYPES = new Set(["git_clone", "git_pull", "git_checkout", "git_commit", "git_push"]);

/**
 * Adds one event to a story (mutating it; the caller re-renders). Events already seen (a resumed
 * stream) are ignored by seq. A step that changes (more text, its tool's end) bumps its `rev`, so
 * that the page re-renders that step only.
 */
export function addEvent(story, event) {
  if (typeof event.seq === "number") {
    if (event.seq <= story.lastSeq) return story;
    story.lastSeq = event.seq;
  }
  const last = story.items[story.items.length - 1];
  switch (event.type) {
    case "text":
    case "thinking":
      if (last && last.kind === event.type) {
        last.content += event.content ?? "";
        last.seqs.push(event.seq);
        last.rev += 1;
      } else {
        story.items.push({
          kind: event.type,
          content: event.content ?? "",
          seqs: [event.seq],
          at: event.timestamp,
          rev: 0,
        });
      }
      return story;
    case "tool_start":
    case "tool_end": {
      const callID = event.tool?.callID ?? `seq-${event.seq}`;
      let item = story.tools.get(callID);
      if (!item) {
        item = { kind: "tool", callID, tool: {}, seqs: [], at: event.timestamp, running: true, rev: 0 };
        story.tools.set(callID, item);
        story.items.push(item);
      }
      item.tool = { ...item.tool, ...event.tool };
      item.seqs.push(event.seq);
      item.rev += 1;
      if (event.type === "tool_end") item.running = false;
      return story;
    }
    case "permission":
      story.items.push({
        kind: "permission",
        permission: event.permission ?? {},
        seqs: [event.seq],
        at: event.timestamp,
      });
      return story;
    case "error":
      story.items.push({
        kind: "error",
        content: event.content ?? "",
        code: event.errorCode,
        seqs: [event.seq],
        at: event.timestamp,
      });
      return story;
    default:
      story.items.push({
        kind: GIT_TYPES.has(event.type) ? "git" : "step",
        type: event.type,
        event,
        seqs: [event.seq],
        at: event.timestamp,
      });
      return story;
  }
}

/** A one-line summary of a step or git event. */
export function describeStep(event) {
  const git = event.git ?? {};
  switch (event.type) {
    case "git_clone":
      return `cloned ${git.url ?? ""}${git.branch ? ` (${git.branch})` : ""}`;
    case "git_pull":
      return `pulled ${git.branch ?? ""}${git.commit ? ` at ${git.commit.slice(0, 10)}` : ""}`;
    case "git_checkout":
      return `checked out ${git.branch ?? git.ref ?? ""}`;
    case "git_commit":
      return `committed ${git.commit ? git.commit.slice(0, 10) : ""}${
        git.filesChanged !== undefined
          ? `: ${git.filesChanged} files, +${git.insertions ?? 0} −${git.deletions ?? 0}`
          : ""
      }`;
    case "git_push":
      return `pushed ${git.branch ?? ""}${git.remote ? ` to ${git.remote}` : ""}`;
    case "session_created":
    case "session_reused":
    case "session_restored":
      return `${event.type.replace("_", " ")}${event.session ? `: ${event.session.name}` : ""}`;
    case "workspace_created":
    case "workspace_reused":
      return `${event.type.replace("_", " ")}${event.workspace ? `: ${event.workspace.name}` : ""}`;
    case "task_started":
      return `task started${event.workerID ? ` on ${event.workerID}` : ""}${event.attempt ? ` (attempt ${event.attempt})` : ""}`;
    case "prompt_sent":
      return `prompt sent${event.content ? ` (${event.content.length.toLocaleString()} characters)` : ""}`;
    case "artifact":
      return `artifact ${event.artifact?.key ?? event.artifact?.name ?? ""}`;
    default:
      return event.content
        ? `${event.type.replace("_", " ")}: ${event.content}`
        : event.type.replace("_", " ");
  }
}

/** File extension -> highlight.js language (one of those the gateway serves, src/console-routes.ts). */
const BY_EXTENSION = new Map(
  Object.entries({
    ts: "typescript",
    tsx: "typescript",
    mts: "typescript",
    cts: "typescript",
    js: "javascript",
    jsx: "javascript",
    mjs: "javascript",
    cjs: "javascript",
    py: "python",
    pyi: "python",
    go: "go",
    rs: "rust",
    java: "java",
    json: "json",
    md: "markdown",
    yml: "yaml",
    yaml: "yaml",
    sh: "bash",
    bash: "bash",
    c: "c",
    h: "c",
    cc: "cpp",
    cpp: "cpp",
    cxx: "cpp",
    hpp: "cpp",
    css: "css",
    html: "xml",
    xml: "xml",
    svg: "xml",
    sql: "sql",
    rb: "ruby",
  }),
);

/** The language of a file by its extension, or undefined (shown plain). */
export function languageOf(fileName) {
  const base = fileName.split("/").pop() ?? "";
  const dot = base.lastIndexOf(".");
  if (dot <= 0) return undefined;
  return BY_EXTENSION.get(base.slice(dot + 1).toLowerCase());
}

/**
 * A unified diff as files of lines, each line classified for colouring: `add`, `del`, `hunk`,
 * `meta` (file headers) or `ctx`; each file with its language by extension (undefined: plain).
 */
export function parseDiff(text) {
  const files = [];
  let current;
  for (const line of text.split("\n")) {
    if (line.startsWith("diff --git ")) {
      const match = / b\/(.*)$/.exec(line);
      const name = match ? match[1] : line.slice(11);
      current = { name, language: languageOf(name), lines: [], added: 0, deleted: 0 };
      files.push(current);
    }
    if (!current) {
      current = { name: "(patch)", lines: [], added: 0, deleted: 0 };
      files.push(current);
    }
    let kind = "ctx";
    if (
      line.startsWith("diff --git ") ||
      line.startsWith("index ") ||
      line.startsWith("--- ") ||
      line.startsWith("+++ ")
    )
      kind = "meta";
    else if (
      line.startsWith("new file") ||
      line.startsWith("deleted file") ||
      line.startsWith("similarity") ||
      line.startsWith("rename ")
    )
      kind = "meta";
    else if (line.startsWith("@@")) kind = "hunk";
    else if (line.startsWith("+")) {
      kind = "add";
      current.added += 1;
    } else if (line.startsWith("-")) {
      kind = "del";
      current.deleted += 1;
    }
    current.lines.push({ kind, text: line });
  }
  if (files.length > 0) {
    const tail = files[files.length - 1].lines;
    if (tail.length > 0 && tail[tail.length - 1].text === "") tail.pop();
  }
  return files;
}
