import { readFile } from "node:fs/promises";
import { createRequire } from "node:module";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import type { Hono } from "hono";
import type { GatewayEnv } from "./route-context.js";

/**
 * The web console's files: the package's `console/` folder (next to `src/` and `dist/`, so the
 * same path works from source and from the build) and the one vendored module, htm's preact
 * bundle, served straight from its npm package. Nothing is built; the browser loads ES modules.
 */
const CONSOLE_DIR = fileURLToPath(new URL("../console/", import.meta.url));
const PREACT_BUNDLE = join(
  dirname(dirname(createRequire(import.meta.url).resolve("htm"))),
  "preact",
  "standalone.module.js",
);

/**
 * highlight.js for the diff: the core and a chosen set of common languages, each a self-contained
 * ES module of the project's own browser build package (`@highlightjs/cdn-assets`; the
 * `highlight.js` package's `es/` entry re-exports CommonJS, which a browser cannot load).
 */
const HLJS_DIR = join(
  dirname(createRequire(import.meta.url).resolve("@highlightjs/cdn-assets/package.json")),
  "es",
);
/** The languages served; `console/highlight.js` maps file extensions to them. */
const HLJS_LANGUAGES = [
  "bash",
  "c",
  "cpp",
  "css",
  "go",
  "java",
  "javascript",
  "json",
  "markdown",
  "python",
  "ruby",
  "rust",
  "sql",
  "typescript",
  "xml",
  "yaml",
];

const JS = "text/javascript; charset=utf-8";
const MODULES = [
  "app.js",
  "api.js",
  "story.js",
  "highlight.js",
  "ui.js",
  "views/overview.js",
  "views/tasks.js",
  "views/task-detail.js",
  "views/submit.js",
  "views/pages.js",
  "views/throughput.js",
  "views/costs.js",
];

const FILES: Record<string, { path: string; type: string }> = {
  "/": { path: join(CONSOLE_DIR, "index.html"), type: "text/html; charset=utf-8" },
  ...Object.fromEntries(MODULES.map((m) => [`/console/${m}`, { path: join(CONSOLE_DIR, m), type: JS }])),
  "/console/console.css": { path: join(CONSOLE_DIR, "console.css"), type: "text/css; charset=utf-8" },
  "/console/vendor/preact-htm.js": { path: PREACT_BUNDLE, type: JS },
  "/console/vendor/hljs/core.js": { path: join(HLJS_DIR, "core.min.js"), type: JS },
  ...Object.fromEntries(
    HLJS_LANGUAGES.map((l) => [
      `/console/vendor/hljs/${l}.js`,
      { path: join(HLJS_DIR, "languages", `${l}.min.js`), type: JS },
    ]),
  ),
};

/**
 * Same-origin only: scripts and styles from the gateway itself, requests only back to it (the
 * token never leaves for another origin), no framing.
 */
const CSP =
  "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; " +
  "base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

/**
 * The console's routes: `GET /` and `GET /console/*`, a fixed list of files (no path from the
 * request reaches the file system). They need no token: the page asks for one and sends it on
 * every `/v1` request itself.
 */
export function registerConsoleRoutes(app: Hono<GatewayEnv>): void {
  for (const [route, file] of Object.entries(FILES)) {
    app.get(route, async (c) => {
      const body = await readFile(file.path);
      return c.body(body, 200, {
        "Content-Type": file.type,
        "Cache-Control": "no-cache",
        "Content-Security-Policy": CSP,
        "X-Content-Type-Options": "nosniff",
        "Referrer-Policy": "no-referrer",
      });
    });
  }
}
