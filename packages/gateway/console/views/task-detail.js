// Task detail: the run's story as it happens, the result, the diff, cancel and replay.
import { Component, html, useCallback, useEffect, useMemo, useState } from "/console/vendor/preact-htm.js";
import { api, followEvents } from "/console/api.js";
import { addEvent, describeStep, emptyStory, parseDiff } from "/console/story.js";
import { ACTIVE, ErrorNote, POLL_MS, StatusBadge, canWrite, durationOf, fmt } from "/console/ui.js";

export function TaskDetail({ me, taskID }) {
  const [task, setTask] = useState(undefined);
  const [error, setError] = useState(undefined);
  const [story, setStory] = useState(() => ({ ...emptyStory(), version: 0 }));
  const [result, setResult] = useState(undefined);
  const [patch, setPatch] = useState(undefined);
  const [note, setNote] = useState(undefined);
  // Bumped by a replay: the page follows the task's events again, for its new run.
  const [run, setRun] = useState(0);
  const path = `/v1/tasks/${encodeURIComponent(taskID)}`;

  const loadTask = useCallback(() => api(path).then(setTask, setError), [path]);
  useEffect(() => {
    void loadTask();
    const controller = new AbortController();
    const current = emptyStory();
    let pending = false;
    // Events arrive in bursts: render at most once a frame.
    const flush = () => {
      pending = false;
      setStory({ ...current, version: current.lastSeq });
    };
    followEvents(taskID, {
      signal: controller.signal,
      onEvent(type, data) {
        if (type === "result") {
          setResult(data);
          void loadTask();
          return;
        }
        addEvent(current, data);
        if (!pending) {
          pending = true;
          requestAnimationFrame(flush);
        }
      },
    }).catch(setError);
    return () => controller.abort();
  }, [taskID, run]);

  // While it runs, the task view changes (worker, attempts): refresh it now and then.
  useEffect(() => {
    if (!task || !ACTIVE.has(task.status) || result) return undefined;
    const timer = setInterval(() => void loadTask(), POLL_MS);
    return () => clearInterval(timer);
  }, [task?.status, result]);

  useEffect(() => {
    if (!result) return;
    api(`${path}/artifacts`)
      .then(async (list) => {
        const item = list.items.find((a) => a.key.endsWith("/changes.patch"));
        setPatch(item ? { key: item.key, text: await api(item.url) } : null);
      })
      .catch(setError);
  }, [result]);

  const cancel = async () => {
    try {
      await api(`${path}/cancel`, {
        method: "POST",
        json: { reason: `cancelled from the console by ${me.name}` },
      });
      setNote("Cancel requested.");
      void loadTask();
    } catch (err) {
      setError(err);
    }
  };
  const replay = async () => {
    try {
      await api(`/v1/dead-letters/${encodeURIComponent(taskID)}/replay`, { method: "POST" });
      setNote("Replayed: the task is queued again.");
      setResult(undefined);
      setPatch(undefined);
      setStory({ ...emptyStory(), version: 0 });
      setRun((r) => r + 1);
    } catch (err) {
      setError(err);
    }
  };

  const status = result?.status ?? task?.status;
  const m = { ...(task?.metrics ?? {}) };
  const rm = result?.metrics;
  if (rm) {
    m.duration = rm.duration;
    m.cost = rm.cost;
    m.model = rm.model;
    m.tokens = rm.tokens ? rm.tokens.input + rm.tokens.output : m.tokens;
  }
  const writer = canWrite(me);
  return html`<section aria-labelledby="task-h" class="detail">
    <p><a href="#/tasks">← Tasks</a></p>
    <div class="title-row">
      <h1 id="task-h">Task ${taskID}</h1>
      ${status ? html`<${StatusBadge} status=${status} />` : null}
    </div>
    <div class="actions">
      ${writer && status && ACTIVE.has(status) && !result ? html`<button type="button" class="danger" onClick=${cancel}>Cancel task</button>` : null}
      ${writer && (status === "error" || status === "timeout") ? html`<button type="button" onClick=${replay}>Replay task</button>` : null}
      <a href=${`#/tasks/${encodeURIComponent(taskID)}`} class="permalink">Link to this view</a>
    </div>
    <p role="status" class="note">${note ?? ""}</p>
    <${ErrorNote} error=${error} />
    ${
      task
        ? html`<dl class="facts">
            <div>
              <dt>Session</dt>
              <dd>${task.session ?? "—"}</dd>
            </div>
            <div>
              <dt>Worker</dt>
              <dd>${task.worker ?? "—"}</dd>
            </div>
            <div>
              <dt>Attempts</dt>
              <dd>${task.attempts ?? "—"}</dd>
            </div>
            <div>
              <dt>Model</dt>
              <dd>${m.model ?? "—"}</dd>
            </div>
            <div>
              <dt>Tokens</dt>
              <dd>${fmt.num(m.tokens)}</dd>
            </div>
            <div>
              <dt>Cost</dt>
              <dd>${fmt.cost(m.cost)}</dd>
            </div>
            <div>
              <dt>Duration</dt>
              <dd>${fmt.duration(m.duration ?? durationOf(task))}</dd>
            </div>
            <div>
              <dt>Submitted</dt>
              <dd>${fmt.time(task.submittedAt)}</dd>
            </div>
            ${
              result?.workspace
                ? html`<div>
                    <dt>Workspace</dt>
                    <dd>${result.workspace.name ?? "—"}</dd>
                  </div>`
                : null
            }
          </dl>`
        : null
    }
    ${
      task?.prompt
        ? html`<h2>Prompt</h2>
            <pre class="prompt-text">${task.prompt}</pre>`
        : null
    }
    ${
      result
        ? html`<h2>Result</h2>
            ${result.error ? html`<p class="error">${result.errorCode ? `${result.errorCode}: ` : ""}${result.error}</p>` : null}
            <pre class="result-text" data-testid="result">${result.result ?? ""}</pre>`
        : null
    }
    <h2>
      Story
      <span class="count"
        >(${story.items.length} steps, ${story.lastSeq} events${result ? "" : ", live"})</span
      >
    </h2>
    <${Story} story=${story} taskID=${taskID} />
    ${
      result
        ? html`<h2>Changes</h2>
            <${Diff} patch=${patch} />`
        : null
    }
  </section>`;
}

/** Steps rendered at first; "Show earlier steps" adds this many more each time. */
const STORY_WINDOW = 200;

/**
 * The newest STORY_WINDOW steps (a 10,000-event run opens without building 10,000 list items),
 * with a button for earlier ones. Each step is a StoryEntry that re-renders only when its own
 * step changed, so a live event costs one entry, not the whole list.
 */
function Story({ story, taskID }) {
  const [shown, setShown] = useState(STORY_WINDOW);
  if (story.items.length === 0) return html`<p class="muted" data-last-seq="0">No events yet.</p>`;
  const hidden = Math.max(0, story.items.length - shown);
  const items = hidden > 0 ? story.items.slice(hidden) : story.items;
  return html`${
      hidden > 0
        ? html`<p class="earlier">
            <button type="button" onClick=${() => setShown(shown + STORY_WINDOW * 5)}>
              Show earlier steps (${hidden.toLocaleString()} more)
            </button>
          </p>`
        : null
    }
    <ol class="story" aria-live="polite" aria-relevant="additions" data-last-seq=${story.lastSeq}>
      ${items.map((item) => html`<${StoryEntry} key=${item.seqs[0]} item=${item} rev=${item.rev} taskID=${taskID} />`)}
    </ol>`;
}

/** One step of the story; `rev` (bumped by addEvent when the step changes) decides re-rendering. */
class StoryEntry extends Component {
  shouldComponentUpdate(next) {
    return next.item !== this.props.item || next.rev !== this.props.rev;
  }
  render({ item, taskID }) {
    return html`<li class=${`ev ev-${item.kind}`} data-seq=${item.seqs[0]}>
      <${StoryItem} item=${item} taskID=${taskID} />
    </li>`;
  }
}

function StoryItem({ item, taskID }) {
  switch (item.kind) {
    case "text":
      return html`<span class="kind">text</span>
        <p class="text">${item.content}</p>`;
    case "thinking":
      return html`<span class="kind">thinking</span>
        <p class="thinking">${item.content}</p>`;
    case "tool": {
      const t = item.tool;
      return html`<span class="kind">tool</span>
        <details open=${item.running}>
          <summary>
            <code>${t.name ?? "tool"}</code>${t.title ? ` ${t.title}` : ""}
            ${item.running ? html` <em>running…</em>` : html` · ${t.status ?? "done"}${t.exitCode !== undefined ? ` · exit ${t.exitCode}` : ""}${t.duration !== undefined ? ` · ${fmt.duration(t.duration)}` : ""}`}
          </summary>
          ${
            t.args
              ? html`<h3>Arguments</h3>
                  <pre>${JSON.stringify(t.args, null, 2)}</pre>`
              : null
          }
          ${t.output !== undefined ? html`<${ToolOutput} tool=${t} taskID=${taskID} />` : null}
          ${t.error ? html`<p class="error">${t.error}</p>` : null}
        </details>`;
    }
    case "permission": {
      const p = item.permission;
      return html`<span class="kind">permission</span>
        <p>
          ${p.permission ?? p.kind}${p.patterns?.length ? ` ${p.patterns.join(", ")}` : ""}:
          <strong>${p.decision}</strong>${p.reason ? ` (${p.reason})` : ""}
        </p>`;
    }
    case "error":
      return html`<span class="kind">error</span>
        <p class="error">${item.code ? `${item.code}: ` : ""}${item.content}</p>`;
    default:
      return html`<span class="kind">${item.kind === "git" ? "git" : "step"}</span>
        <p>${describeStep(item.event)}</p>`;
  }
}

/** An output longer than this (lines or characters) shows its head until expanded. */
const COLLAPSE_LINES = 30;
const COLLAPSE_CHARS = 6000;

/**
 * A tool call's output. Cut by the worker (`truncated`): the head, and a button that fetches the
 * whole output from the artifact the event names (only an artifact of this task, through the
 * gateway's artifact API, in the signed-in org). Long but whole: the first lines, and a button.
 */
function ToolOutput({ tool, taskID }) {
  const [full, setFull] = useState(undefined);
  const [expanded, setExpanded] = useState(false);
  const [loading, setLoading] = useState(false);
  const [error, setError] = useState(undefined);
  const ref = tool.truncated ? tool.artifact : undefined;
  const fetchable =
    ref !== undefined && ref.key.startsWith(`artifacts/${taskID}/`) && !ref.key.includes("/../");
  const text = full ?? tool.output;
  // A cut output is short already (the worker's maxInlineOutput): shown whole, with its button.
  const head = expanded || tool.truncated ? undefined : headOf(text);
  const showFull = async () => {
    setLoading(true);
    try {
      setFull(await api(`/v1/artifacts/${ref.key.split("/").map(encodeURIComponent).join("/")}`));
      setError(undefined);
    } catch (err) {
      setError(err);
    } finally {
      setLoading(false);
    }
  };
  let title = "Output";
  if (full !== undefined) title = `Output (full, ${fmt.num(ref.size)} bytes)`;
  else if (tool.truncated)
    title = ref ? `Output (truncated: ${fmt.num(ref.size)} bytes in all)` : "Output (truncated)";
  return html`<h3>${title}</h3>
    <pre class="tool-output" data-testid="tool-output">${head ? head.text : text}</pre>
    ${
      head
        ? html`<button type="button" class="more" onClick=${() => setExpanded(true)}>
            Show all ${head.lines.toLocaleString()} ${head.lines === 1 ? "line" : "lines"}
          </button>`
        : null
    }
    ${
      fetchable && full === undefined
        ? html`<button type="button" class="more" disabled=${loading} onClick=${showFull}>
            ${loading ? "Loading the full output…" : "Show full output"}
          </button>`
        : null
    }
    ${tool.truncated && !fetchable ? html`<p class="muted">The full output was not stored.</p>` : null}
    <${ErrorNote} error=${error} />`;
}

/** The first COLLAPSE_LINES lines of a long text (and its line count), or undefined when short. */
function headOf(text) {
  let cut = -1;
  let lines = 1;
  for (let i = text.indexOf("\n"); i >= 0; i = text.indexOf("\n", i + 1)) {
    lines += 1;
    if (lines === COLLAPSE_LINES + 1) cut = i;
  }
  if (text.endsWith("\n")) lines -= 1;
  if (lines <= COLLAPSE_LINES && text.length <= COLLAPSE_CHARS) return undefined;
  const end = Math.min(cut < 0 ? text.length : cut, COLLAPSE_CHARS);
  return { text: `${text.slice(0, end)}\n…`, lines };
}

function Diff({ patch }) {
  const files = useMemo(() => (patch?.text ? parseDiff(patch.text) : []), [patch]);
  // The highlighter and the languages this diff needs load on demand; until then lines are plain.
  const [highlighter, setHighlighter] = useState(undefined);
  useEffect(() => {
    const languages = new Set(files.map((f) => f.language).filter(Boolean));
    if (languages.size === 0) return;
    let live = true;
    import("/console/highlight.js")
      .then(async (h) => {
        await Promise.all([...languages].map((l) => h.loadLanguage(l)));
        if (live) setHighlighter(h);
      })
      .catch((err) => console.warn("highlighting unavailable", err));
    return () => {
      live = false;
    };
  }, [files]);
  if (patch === undefined) return html`<p class="muted">Loading the diff…</p>`;
  if (patch === null || patch.text.trim() === "") return html`<p class="muted">No changes.</p>`;
  return html`<div class="diff" aria-label="Diff">
    ${files.map(
      (f) =>
        html`<section class="diff-file" data-language=${f.language ?? "plain"}>
          <h3>
            <code>${f.name}</code> <span class="add">+${f.added}</span> <span class="del">−${f.deleted}</span>
          </h3>
          <${DiffLines} file=${f} highlighter=${highlighter} />
        </section>`,
    )}
  </div>`;
}

/** A file's lines: +/- colouring always, tokens coloured when its language is known and loaded. */
function DiffLines({ file, highlighter }) {
  const lang =
    highlighter && file.lines.length <= highlighter.MAX_HIGHLIGHTED_LINES ? file.language : undefined;
  return html`<pre class=${lang ? `hljs language-${lang}` : ""}>
${file.lines.map((l) => {
      if (!lang || (l.kind !== "add" && l.kind !== "del" && l.kind !== "ctx") || l.text.startsWith("\\")) {
        return html`<span class=${`dl dl-${l.kind}`}>${l.text}</span>`;
      }
      return html`<span class=${`dl dl-${l.kind}`}
        ><span class="sign">${l.text.slice(0, 1)}</span
        ><span dangerouslySetInnerHTML=${{ __html: highlighter.highlightLine(lang, l.text.slice(1)) }}></span
      ></span>`;
    })}</pre>`;
}
