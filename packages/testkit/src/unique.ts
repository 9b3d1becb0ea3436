import { randomBytes } from "node:crypto";
import { mkdtemp } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";

let counter = 0;

/** Replaces every character outside `[A-Za-z0-9_-]` with `_`; an empty result becomes `x`. */
function safePrefix(prefix: string): string {
  const safe = prefix.replace(/[^A-Za-z0-9_-]/g, "_");
  return safe === "" ? "x" : safe;
}

/**
 * A name no other call in any process returns, for streams, buckets, subjects and dirs of one test.
 *
 * The result has only `[A-Za-z0-9_-]`, so it is valid as a JetStream stream or consumer name, a KV or
 * object store bucket, a single subject token and a file name. Characters of `prefix` outside that set
 * are replaced with `_`.
 *
 * @example uniqueName("tasks") // "tasks-1-9f2c04ab1e"
 */
export function uniqueName(prefix: string): string {
  counter += 1;
  return `${safePrefix(prefix)}-${counter.toString(36)}-${randomBytes(5).toString("hex")}`;
}

/**
 * Makes a new empty directory under the OS temp dir, named after `prefix`, and returns its path.
 *
 * The caller removes it (`rm(dir, { recursive: true, force: true })`).
 */
export async function tempDir(prefix: string): Promise<string> {
  return mkdtemp(join(tmpdir(), `${safePrefix(prefix)}-`));
}
