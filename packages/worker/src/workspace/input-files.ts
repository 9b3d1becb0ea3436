import { randomBytes } from "node:crypto";
import { lstat, realpath, rename, rm, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { ValidationError, validateFileName } from "@station-coding/protocol";
import { ArtifactError } from "./workspace-errors.js";

/** A file to place in a workspace before the task runs (a staged input). */
export interface InputFile {
  name: string;
  data: Uint8Array;
}

/** Options of {@link stageInputs}. */
export interface StageInputsOptions {
  /** Largest total size of the files. @default 64 MiB */
  maxBytes?: number;
}

/** The largest total size of a task's staged inputs unless configured: 64 MiB. */
export const DEFAULT_MAX_INPUT_BYTES = 64 * 1024 * 1024;

/**
 * Writes staged input files into the workspace directory `dir` (a real path, see
 * `WorkspaceManager.prepare`). Each name must be a plain file name (`validateFileName`: no `/`,
 * no `..`, no leading `.` or `-`); an existing entry of that name is replaced only when it is a
 * regular file, so a symbolic link planted in the workspace cannot redirect the write. Each file is
 * written to a fresh temporary name and renamed into place.
 *
 * @returns the paths written.
 * @throws ArtifactError naming the input that was refused; nothing is written then.
 */
export async function stageInputs(
  dir: string,
  files: InputFile[],
  options: StageInputsOptions = {},
): Promise<string[]> {
  const maxBytes = options.maxBytes ?? DEFAULT_MAX_INPUT_BYTES;
  const seen = new Set<string>();
  let total = 0;
  for (const [i, file] of files.entries()) {
    const field = `inputs[${i}]`;
    try {
      validateFileName(field, file.name);
    } catch (err) {
      const message = err instanceof ValidationError ? err.message : String(err);
      throw new ArtifactError(`${message}; the input was not staged`, { cause: err });
    }
    if (seen.has(file.name)) throw new ArtifactError(`${field} ${JSON.stringify(file.name)}: named twice`);
    seen.add(file.name);
    total += file.data.byteLength;
  }
  if (total > maxBytes) {
    throw new ArtifactError(`inputs: ${total} bytes in total, more than the limit of ${maxBytes} bytes`);
  }
  const root = await realpath(dir);
  for (const file of files) {
    const target = join(root, file.name);
    const existing = await lstat(target).catch(() => undefined);
    if (existing && !existing.isFile()) {
      throw new ArtifactError(
        `inputs ${JSON.stringify(file.name)}: the workspace already has a ${existing.isSymbolicLink() ? "symbolic link" : "directory or special file"} of that name; not replaced`,
      );
    }
  }
  const written: string[] = [];
  for (const file of files) {
    const target = join(root, file.name);
    const temp = join(root, `.station-input-${randomBytes(6).toString("hex")}`);
    try {
      await writeFile(temp, file.data, { flag: "wx", mode: 0o644 });
      await rename(temp, target);
    } catch (err) {
      await rm(temp, { force: true });
      throw new ArtifactError(
        `inputs ${JSON.stringify(file.name)}: could not be written: ${(err as Error).message}`,
        {
          cause: err,
        },
      );
    }
    written.push(target);
  }
  return written;
}
