import { create } from "tar";
import { ArtifactError } from "./workspace-errors.js";

/** Options of {@link snapshotWorkspace}. */
export interface SnapshotOptions {
  /** Largest archive accepted, compressed. @default 256 MiB */
  maxBytes?: number;
  signal?: AbortSignal;
}

/**
 * A gzipped tar archive of a workspace, `.git` excluded, for the object store
 * (`snapshot/<session>/<timestamp>.tar.gz`). Symbolic links are stored as links, never followed,
 * so nothing outside the workspace is read.
 *
 * @throws ArtifactError when the archive is larger than `maxBytes` or cannot be read.
 */
export async function snapshotWorkspace(dir: string, options: SnapshotOptions = {}): Promise<Uint8Array> {
  const maxBytes = options.maxBytes ?? 256 * 1024 * 1024;
  options.signal?.throwIfAborted();
  const pack = create(
    {
      gzip: true,
      cwd: dir,
      portable: true,
      follow: false,
      filter: (path) => !/^(\.\/)?\.git(\/|$)/.test(path),
    },
    ["."],
  );
  const chunks: Buffer[] = [];
  let size = 0;
  try {
    for await (const chunk of pack as AsyncIterable<Buffer>) {
      options.signal?.throwIfAborted();
      size += chunk.length;
      if (size > maxBytes) {
        throw new ArtifactError(`snapshot of ${dir}: larger than ${maxBytes} bytes; not stored`);
      }
      chunks.push(chunk);
    }
  } catch (err) {
    if (err instanceof ArtifactError || options.signal?.aborted) throw err;
    throw new ArtifactError(`snapshot of ${dir}: ${(err as Error).message}`, { cause: err });
  }
  const out = Buffer.concat(chunks);
  return new Uint8Array(out.buffer, out.byteOffset, out.byteLength);
}
