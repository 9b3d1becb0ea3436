#!/usr/bin/env node
import { main } from "./program.js";

// A closed pipe (`station-coding ... | head`) ends the command quietly.
process.stdout.on("error", (err: NodeJS.ErrnoException) => {
  if (err.code === "EPIPE") process.exit(process.exitCode ?? 0);
  throw err;
});

await main(process.argv);
// The command is over: flush what it wrote and exit, so that nothing left behind (a stray timer
// or socket) can keep a finished command alive.
await new Promise<void>((resolve) => process.stdout.write("", () => resolve()));
await new Promise<void>((resolve) => process.stderr.write("", () => resolve()));
process.exit();
