import type { ObjectInfo, ObjectStore } from "@nats-io/obj";
import type { ArtifactRef } from "@station-coding/protocol";
import {
  ErrorCodes,
  StationError,
  ValidationError,
  artifactKey,
  inputKey,
  patchKey,
  validateFileName,
  validateName,
} from "@station-coding/protocol";
import { guarded } from "./errors.js";

/** The object store folders that belong to one task. */
const TASK_FOLDERS = ["input", "output", "artifacts"] as const;

/**
 * Files in the namespace's object store: inputs staged for a task (`input/<taskID>/<file>`), its
 * patch (`output/<taskID>/changes.patch`) and its artifacts (`artifacts/<taskID>/<file>`).
 */
export class ArtifactsApi {
  /** @internal */
  constructor(
    private readonly store: () => Promise<ObjectStore>,
    private readonly bucket: string,
    private readonly maxBytes: number,
    private readonly org?: string,
  ) {}

  /**
   * Stages an input file for a task; list its name in the task's `inputs` and the worker copies it
   * into the workspace.
   *
   * @throws ValidationError for a bad taskID or file name, or data over the size limit.
   */
  async stage(taskID: string, fileName: string, data: Uint8Array | string): Promise<ArtifactRef> {
    validateName("taskID", taskID);
    validateFileName("fileName", fileName);
    const bytes = typeof data === "string" ? new TextEncoder().encode(data) : data;
    const key = inputKey(taskID, fileName);
    if (bytes.byteLength > this.maxBytes) {
      throw new ValidationError(
        "data",
        "size",
        `artifact ${key}: ${bytes.byteLength} bytes is over the limit of ${this.maxBytes} bytes (option maxArtifactBytes)`,
        ErrorCodes.ArtifactError,
      );
    }
    const info = await guarded(
      `staging ${key} in object store ${this.bucket}`,
      async () => (await this.store()).putBlob({ name: key }, bytes),
      this.org,
    );
    return toRef(this.bucket, info, "input");
  }

  /** Every object of a task: staged inputs, its patch and its artifacts. */
  async list(taskID: string): Promise<ArtifactRef[]> {
    validateName("taskID", taskID);
    const prefixes = TASK_FOLDERS.map((folder) => `${folder}/${taskID}/`);
    const all = await guarded(`listing object store ${this.bucket}`, async () => (await this.store()).list());
    return all
      .filter((info) => !info.deleted && prefixes.some((prefix) => info.name.startsWith(prefix)))
      .sort((a, b) => a.name.localeCompare(b.name))
      .map((info) => toRef(this.bucket, info, kindOf(taskID, info.name)));
  }

  /**
   * The content of an object, by key (an `ArtifactRef.key`).
   *
   * @throws StationError (code ARTIFACT_ERROR) when there is no such object.
   */
  async get(key: string): Promise<Uint8Array> {
    const data = await guarded(`reading ${key} from object store ${this.bucket}`, async () =>
      (await this.store()).getBlob(key),
    );
    if (!data) throw this.notFound(key);
    return data;
  }

  /**
   * The content of an object as a stream, for large files.
   *
   * @throws StationError (code ARTIFACT_ERROR) when there is no such object.
   */
  async stream(key: string): Promise<ReadableStream<Uint8Array>> {
    const result = await guarded(`reading ${key} from object store ${this.bucket}`, async () =>
      (await this.store()).get(key),
    );
    if (!result) throw this.notFound(key);
    return result.data;
  }

  /** Deletes every object of a task and returns how many there were. */
  async delete(taskID: string): Promise<number> {
    const refs = await this.list(taskID);
    const store = await this.store();
    for (const ref of refs) {
      await guarded(`deleting ${ref.key} from object store ${this.bucket}`, () => store.delete(ref.key));
    }
    return refs.length;
  }

  private notFound(key: string): StationError {
    return new StationError(
      ErrorCodes.ArtifactError,
      `artifact ${JSON.stringify(key)}: not found in object store ${this.bucket}`,
    );
  }
}

function kindOf(taskID: string, name: string): string {
  if (name.startsWith(`input/${taskID}/`)) return "input";
  if (name === patchKey(taskID)) return "patch";
  if (name.startsWith(`output/${taskID}/`)) return "output";
  return name.startsWith(artifactKey(taskID, "")) ? "artifact" : "file";
}

function toRef(bucket: string, info: ObjectInfo, kind: string): ArtifactRef {
  return { bucket, key: info.name, kind, size: info.size, digest: info.digest };
}
