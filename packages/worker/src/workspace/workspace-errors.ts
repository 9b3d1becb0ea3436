import type { StationErrorOptions } from "@station-coding/protocol";
import { ErrorCodes, StationError } from "@station-coding/protocol";

/** Thrown when a workspace cannot be prepared or would escape the base directory. */
export class WorkspaceError extends StationError {
  override name = "WorkspaceError";
  constructor(message: string, options: StationErrorOptions = {}) {
    super(ErrorCodes.WorkspaceError, message, options);
  }
}

/** A staged input, snapshot or patch could not be read or written. */
export class ArtifactError extends StationError {
  override name = "ArtifactError";
  constructor(message: string, options: StationErrorOptions = {}) {
    super(ErrorCodes.ArtifactError, message, options);
  }
}
