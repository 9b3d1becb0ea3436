const escape = (text: string): string => text.replace(/[&<>"']/g, (ch) => `&#${ch.charCodeAt(0)};`);

interface Operation {
  summary?: string;
  description?: string;
  parameters?: { name: string; in: string; description?: string; required?: boolean }[];
  responses?: Record<string, { description?: string }>;
  security?: unknown[];
}

/**
 * The API reference as one self-contained HTML page rendered from the OpenAPI document: no
 * script and nothing fetched from elsewhere, so it works offline and behind any proxy.
 */
export function renderDocsPage(document: Record<string, unknown>): string {
  const info = (document.info ?? {}) as { title?: string; version?: string; description?: string };
  const paths = (document.paths ?? {}) as Record<string, Record<string, Operation>>;
  const sections: string[] = [];
  for (const [path, methods] of Object.entries(paths)) {
    for (const [method, op] of Object.entries(methods)) {
      const params = (op.parameters ?? [])
        .map(
          (p) =>
            `<li><code>${escape(p.name)}</code> (${escape(p.in)}${p.required ? ", required" : ""})${p.description ? `: ${escape(p.description)}` : ""}</li>`,
        )
        .join("");
      const responses = Object.entries(op.responses ?? {})
        .map(([status, r]) => `<li><code>${escape(status)}</code> ${escape(r.description ?? "")}</li>`)
        .join("");
      const open = Array.isArray(op.security) && op.security.length === 0 ? " <em>(no token)</em>" : "";
      sections.push(
        `<section id="${escape(`${method}-${path}`)}"><h3><code>${escape(method.toUpperCase())} ${escape(path)}</code>${open}</h3>` +
          `<p>${escape(op.summary ?? "")}</p>${op.description ? `<p>${escape(op.description)}</p>` : ""}` +
          (params ? `<h4>Parameters</h4><ul>${params}</ul>` : "") +
          (responses ? `<h4>Responses</h4><ul>${responses}</ul>` : "") +
          `</section>`,
      );
    }
  }
  return `<!doctype html><html lang="en"><head><meta charset="utf-8"><title>${escape(info.title ?? "API")}</title>
<style>body{font:15px/1.5 system-ui,sans-serif;max-width:60rem;margin:2rem auto;padding:0 1rem}code{background:#f3f3f3;padding:0 .2em}section{border-top:1px solid #ddd;padding:.5rem 0}</style>
</head><body><h1>${escape(info.title ?? "API")} <small>${escape(info.version ?? "")}</small></h1>
<p>${escape(info.description ?? "")}</p><p>Send <code>Authorization: Bearer &lt;token&gt;</code>. The machine-readable document is at <a href="/openapi.json">/openapi.json</a>.</p>
${sections.join("\n")}</body></html>`;
}
