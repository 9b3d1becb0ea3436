import { ErrorCodes, StationError, ValidationError } from "@station-coding/protocol";
import { WaitTimeoutError } from "@station-coding/dispatcher";

/** The media type of every error the gateway answers (RFC 9457). */
export const PROBLEM_JSON = "application/problem+json";

/** Where the problem types are described (the `type` of a problem is this plus a slug). */
const TYPE_BASE = "https://station-coding.dev/problems/";

/** An RFC 9457 problem document. */
export interface ProblemDocument {
  type: string;
  title: string;
  status: number;
  detail: string;
  instance?: string;
  /** The request field at fault (`body.prompt`, `query.limit`, `header.Idempotency-Key`). */
  field?: string;
  /** The station error code, when the failure came from one. */
  code?: string;
  /** Every schema problem, for a 422. */
  errors?: { field: string; message: string }[];
  [extension: string]: unknown;
}

const TITLES: Record<number, string> = {
  400: "Bad Request",
  401: "Unauthorized",
  403: "Forbidden",
  404: "Not Found",
  405: "Method Not Allowed",
  409: "Conflict",
  413: "Content Too Large",
  415: "Unsupported Media Type",
  422: "Unprocessable Content",
  429: "Too Many Requests",
  500: "Internal Server Error",
  502: "Bad Gateway",
  503: "Service Unavailable",
  504: "Gateway Timeout",
};

/**
 * An HTTP failure with its problem document: thrown by handlers and middleware, answered as
 * `application/problem+json` by the gateway's error handler.
 */
export class HttpProblem extends Error {
  override name = "HttpProblem";

  constructor(
    readonly status: number,
    /** Short slug of the problem type, e.g. `invalid-json`. */
    readonly slug: string,
    detail: string,
    readonly extra: Partial<ProblemDocument> = {},
    /** Headers to send with it (`WWW-Authenticate`, `Retry-After`). */
    readonly headers: Record<string, string> = {},
  ) {
    super(detail);
  }

  /** The problem document for a request path. */
  document(instance?: string): ProblemDocument {
    return {
      type: `${TYPE_BASE}${this.slug}`,
      title: TITLES[this.status] ?? "Error",
      status: this.status,
      detail: this.message,
      ...(instance !== undefined ? { instance } : {}),
      ...this.extra,
    };
  }
}

/** A 404 that says what was not found (the same answer for another org's task as for none). */
export function notFound(what: string): HttpProblem {
  return new HttpProblem(404, "not-found", `${what}: not found`);
}

/**
 * The problem for any failure: an {@link HttpProblem} as it is; a ValidationError is a 422 naming
 * its field; a NATS permission failure a 502 (the gateway's own credentials are short); a
 * retryable station error a 503; anything else a 500 that says no more than "internal error".
 */
export function toProblem(err: unknown): HttpProblem {
  if (err instanceof HttpProblem) return err;
  if (err instanceof ValidationError) {
    return new HttpProblem(422, "validation-failed", err.message, {
      field: err.field,
      code: err.code,
      errors: [{ field: err.field, message: err.message }],
    });
  }
  if (err instanceof WaitTimeoutError) {
    return new HttpProblem(504, "wait-timeout", err.message, { code: err.code });
  }
  if (err instanceof StationError) {
    if (err.code === ErrorCodes.PermissionDenied) {
      return new HttpProblem(502, "upstream-permission-denied", err.message, { code: err.code });
    }
    if (err.code === ErrorCodes.ArtifactError && /not found/.test(err.message)) {
      return new HttpProblem(404, "not-found", err.message, { code: err.code });
    }
    if (err.retryable) return new HttpProblem(503, "unavailable", err.message, { code: err.code });
    return new HttpProblem(500, "internal", err.message, { code: err.code });
  }
  return new HttpProblem(500, "internal", "internal error (see the gateway's log)");
}
