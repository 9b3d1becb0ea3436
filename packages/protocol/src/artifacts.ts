import { z } from "zod";

/** Where a file stored in the object store lives; messages carry this instead of large content. */
export const ArtifactRef = z.object({
  /** Object store bucket. */
  bucket: z.string(),
  /** Object name, e.g. `output/<taskID>/changes.patch`. */
  key: z.string(),
  /** What the artifact is: `patch`, `tool-output`, `snapshot`, `input`, `session-export`, … */
  kind: z.string().optional(),
  /** Size in bytes. */
  size: z.number().int().nonnegative(),
  /** Content digest as the object store reports it (`SHA-256=…`). */
  digest: z.string().optional(),
  contentType: z.string().optional(),
});
/** Where a file stored in the object store lives. */
export type ArtifactRef = z.infer<typeof ArtifactRef>;
