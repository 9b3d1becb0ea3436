// The station-coding web console: preact + htm (one vendored ES module), no build step. Every
// view reads the gateway's public HTTP API (api.js); the role of the signed-in token decides which
// write actions exist at all. Routes live in the URL hash so that a link reopens the same view.
import { html, render, useEffect, useState } from "/console/vendor/preact-htm.js";
import { setOrg, signIn, signOut, storedOrg, storedToken } from "/console/api.js";
import { ErrorNote, canWrite, useRoute } from "/console/ui.js";
import { Costs } from "/console/views/costs.js";
import { Overview } from "/console/views/overview.js";
import { DeadLetters, Sessions, Workers } from "/console/views/pages.js";
import { Submit } from "/console/views/submit.js";
import { TaskDetail } from "/console/views/task-detail.js";
import { Tasks } from "/console/views/tasks.js";

// ---------------------------------------------------------------------------------------------
// Sign-in and the frame

function SignIn({ onSignedIn, reason }) {
  const [token, setToken] = useState("");
  const [error, setError] = useState(reason);
  const [busy, setBusy] = useState(false);
  const submit = async (e) => {
    e.preventDefault();
    setBusy(true);
    try {
      onSignedIn(await signIn(token.trim()));
    } catch (err) {
      setError(err);
    } finally {
      setBusy(false);
    }
  };
  return html`<main class="signin">
    <h1>station-coding console</h1>
    <form onSubmit=${submit}>
      <label for="token">Gateway token</label>
      <input
        id="token"
        type="password"
        autocomplete="off"
        required
        value=${token}
        onInput=${(e) => setToken(e.target.value)}
      />
      <p class="hint">Kept in this tab's session storage only; closing the tab signs you out.</p>
      <button type="submit" disabled=${busy}>Sign in</button>
      <${ErrorNote} error=${error} />
    </form>
  </main>`;
}

const NAV = [
  ["overview", "Overview"],
  ["tasks", "Tasks"],
  ["submit", "Submit", true],
  ["sessions", "Sessions"],
  ["workers", "Workers"],
  ["dead-letters", "Dead letters"],
  ["costs", "Costs"],
];

function Frame({ me, route, onSignOut, children }) {
  const org = storedOrg();
  return html`<div class="frame">
    <header>
      <a class="brand" href="#/overview">station-coding</a>
      <nav aria-label="Main">
        <ul>
          ${NAV.filter(([, , write]) => !write || canWrite(me)).map(
            ([id, label]) =>
              html`<li>
                <a href=${`#/${id}`} aria-current=${route.path[0] === id ? "page" : undefined}>${label}</a>
              </li>`,
          )}
        </ul>
      </nav>
      <div class="who">
        ${
          me.orgs.length > 1
            ? html`<label
                >Org
                <select
                  value=${org}
                  onChange=${(e) => {
                    setOrg(e.target.value);
                    location.reload();
                  }}
                >
                  ${me.orgs.map((o) => html`<option value=${o}>${o}</option>`)}
                </select></label
              >`
            : me.org
              ? html`<span>org ${me.org}</span>`
              : null
        }
        <span>${me.name} (${me.role})</span>
        <button type="button" onClick=${onSignOut}>Sign out</button>
      </div>
    </header>
    <main>${children}</main>
  </div>`;
}

function App() {
  const route = useRoute();
  const [me, setMe] = useState(undefined);
  const [reason, setReason] = useState(undefined);
  useEffect(() => {
    const token = storedToken();
    if (token === null) {
      setMe(null);
      return;
    }
    signIn(token).then(setMe, (err) => {
      signOut();
      setReason(err);
      setMe(null);
    });
  }, []);
  if (me === undefined) return html`<p class="boot">Signing in…</p>`;
  if (me === null) return html`<${SignIn} onSignedIn=${setMe} reason=${reason} />`;
  const signOutNow = () => {
    signOut();
    setMe(null);
  };
  return html`<${Frame} me=${me} route=${route} onSignOut=${signOutNow}>${view(me, route)}<//>`;
}

function view(me, route) {
  const [head, id] = route.path;
  switch (head) {
    case "tasks":
      return id !== undefined
        ? html`<${TaskDetail} me=${me} taskID=${id} />`
        : html`<${Tasks} me=${me} query=${route.query} />`;
    case "submit":
      return canWrite(me) ? html`<${Submit} />` : html`<p>Your token may not submit tasks.</p>`;
    case "sessions":
      return html`<${Sessions} />`;
    case "workers":
      return html`<${Workers} />`;
    case "dead-letters":
      return html`<${DeadLetters} me=${me} />`;
    case "costs":
      return html`<${Costs} query=${route.query} />`;
    default:
      return html`<${Overview} />`;
  }
}

render(html`<${App} />`, document.getElementById("app"));
