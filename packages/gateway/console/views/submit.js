// The form for a new task (operators and admins).
import { html, useState } from "/console/vendor/preact-htm.js";
import { api } from "/console/api.js";
import { ErrorNote } from "/console/ui.js";

export function Submit() {
  const [error, setError] = useState(undefined);
  const [busy, setBusy] = useState(false);
  const submit = async (e) => {
    e.preventDefault();
    const form = new FormData(e.target);
    const get = (k) => String(form.get(k) ?? "").trim();
    const task = { prompt: String(form.get("prompt") ?? "") };
    if (get("session")) task.session = { name: get("session") };
    if (get("repo"))
      task.workspace = { git: { url: get("repo"), ...(get("branch") ? { branch: get("branch") } : {}) } };
    if (get("timeout")) task.timeout = Math.round(Number(get("timeout")) * 60_000);
    if (get("model")) {
      const [providerID, ...rest] = get("model").split("/");
      task.model = { providerID, modelID: rest.join("/") };
    }
    setBusy(true);
    try {
      const accepted = await api("/v1/tasks", { method: "POST", json: task });
      location.hash = `#/tasks/${encodeURIComponent(accepted.taskID)}`;
    } catch (err) {
      setError(err);
    } finally {
      setBusy(false);
    }
  };
  return html`<section aria-labelledby="submit-h">
    <h1 id="submit-h">Submit a task</h1>
    <form class="submit" onSubmit=${submit}>
      <label for="prompt">Prompt</label>
      <textarea id="prompt" name="prompt" rows="8" required></textarea>
      <label for="session">Session</label>
      <input id="session" name="session" placeholder="optional: continue a session by name" />
      <label for="repo">Git repository</label>
      <input id="repo" name="repo" placeholder="https://github.com/org/repo.git" />
      <label for="branch">Branch</label>
      <input id="branch" name="branch" />
      <label for="timeout">Timeout (minutes)</label>
      <input id="timeout" name="timeout" type="number" min="1" step="1" />
      <label for="model">Model</label>
      <input id="model" name="model" placeholder="provider/model, e.g. anthropic/claude-sonnet-4" />
      <button type="submit" disabled=${busy}>Submit task</button>
      <${ErrorNote} error=${error} />
    </form>
  </section>`;
}
