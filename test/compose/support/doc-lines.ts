// The Compose commands the README and docs/operations.md tell users to type: every line of a
// ```sh block that runs `docker compose` (after optional VAR=value assignments, `\` continuations
// joined), and every inline `docker compose <args>` that is a whole command (not a template with
// "..." or "…" in it).
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { REPO_ROOT } from "./engine.js";

/** The files whose Compose commands the docs test runs. */
export const DOC_FILES = ["README.md", "docs/operations.md"];

/** A Compose command of the docs. */
export interface DocLine {
  file: string;
  /** The line as written (with its comment, if any): what the test runs. */
  line: string;
  /** The command without its trailing comment: how the test names it. */
  command: string;
}

const COMPOSE_COMMAND = /^(?:[A-Z_][A-Z0-9_]*=\S*\s+)*docker compose\s+\S/;

/** Every Compose command of {@link DOC_FILES}, in the order they appear. */
export function docLines(): DocLine[] {
  const out: DocLine[] = [];
  for (const file of DOC_FILES) {
    const text = readFileSync(join(REPO_ROOT, file), "utf8");
    const add = (line: string): void => {
      out.push({ file, line, command: line.replace(/\s+#.*$/, "").trim() });
    };
    for (const block of text.matchAll(/^```(?:sh|bash)\n([\s\S]*?)^```/gm)) {
      for (const raw of block[1]!.replace(/\s*\\\n\s*/g, " ").split("\n")) {
        const line = raw.trim();
        if (COMPOSE_COMMAND.test(line)) add(line);
      }
    }
    const prose = text.replace(/^```[\s\S]*?^```/gm, "");
    for (const span of prose.matchAll(/`([^`\n]+)`/g)) {
      const code = span[1]!.trim();
      if (COMPOSE_COMMAND.test(code) && !/\.\.\.|…/.test(code)) add(code);
    }
  }
  return out;
}
