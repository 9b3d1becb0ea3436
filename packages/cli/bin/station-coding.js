#!/usr/bin/env node
// The `station-coding` command. It is committed, unlike dist/ (which `npm run build` writes), so
// that npm links it at install time, in a fresh clone too: `npm ci && npm run build`, then
// `npx station-coding --help`.
import { existsSync } from "node:fs";

const main = new URL("../dist/main.js", import.meta.url);
if (!existsSync(main)) {
  process.stderr.write(
    "station-coding is not built: run `npm run build` (packages/cli/dist/main.js is missing)\n",
  );
  process.exit(1);
}
await import(main.href);
