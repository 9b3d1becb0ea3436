// Syntax highlighting for the diff: highlight.js's core and a fixed set of languages, each an ES
// module served from node_modules by the gateway (src/console-routes.ts lists them), loaded only
// when a diff in that language is shown (story.js's languageOf names the language). highlight.js escapes the code and marks tokens with
// `hljs-*` class names only (console.css colours them), so its HTML fits the strict CSP.
import hljs from "/console/vendor/hljs/core.js";

/** Files longer than this stay plain: highlighting is per line and costs time on the main thread. */
export const MAX_HIGHLIGHTED_LINES = 5000;

const loading = new Map();

/** Loads and registers a language once; resolves when it can be used. */
export function loadLanguage(language) {
  let done = loading.get(language);
  if (!done) {
    done = import(`/console/vendor/hljs/${language}.js`).then((m) =>
      hljs.registerLanguage(language, m.default),
    );
    loading.set(language, done);
  }
  return done;
}

/**
 * One line of code as highlighted HTML (escaped by highlight.js). Lines are highlighted one by one,
 * so a construct spanning lines (a block comment, a multi-line string) is coloured per line.
 */
export function highlightLine(language, text) {
  return hljs.highlight(text, { language, ignoreIllegals: true }).value;
}
