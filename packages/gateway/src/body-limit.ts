import type { MiddlewareHandler } from "hono";
import { HttpProblem } from "./problem.js";

/**
 * Refuses request bodies over `maxBytes` with a 413 problem, declared (`Content-Length`) or
 * streamed. Unlike Hono's `bodyLimit`, it reads and discards the rest of a refused body up to a
 * bound before answering, so that an HTTP client still writing its body reads the 413 rather than
 * a reset connection; beyond the bound the connection is closed (`Connection: close`).
 */
export function limitBody(maxBytes: number): MiddlewareHandler {
  const drainBound = Math.max(8 * 1024 * 1024, 4 * maxBytes);
  const tooLarge = (): never => {
    throw new HttpProblem(
      413,
      "body-too-large",
      `the request body is over ${maxBytes} bytes (gateway.maxBodyBytes)`,
      { field: "body" },
      { Connection: "close" },
    );
  };
  return async (c, next) => {
    const body = c.req.raw.body;
    if (!body) return next();
    const declared = Number(c.req.header("content-length"));
    const chunked = c.req.raw.headers.has("transfer-encoding");
    if (!chunked && Number.isFinite(declared) && declared <= maxBytes) return next();
    if (!chunked && Number.isFinite(declared) && declared > drainBound) {
      await body.cancel().catch(() => undefined);
      tooLarge();
    }
    const reader = (body as ReadableStream<Uint8Array>).getReader();
    const chunks: Uint8Array[] = [];
    let size = 0;
    for (;;) {
      const { done, value } = await reader.read();
      if (done) break;
      size += value.byteLength;
      if (size <= maxBytes) chunks.push(value);
      else if (size > drainBound) {
        await reader.cancel().catch(() => undefined);
        break;
      }
    }
    if (size > maxBytes) tooLarge();
    c.req.raw = new Request(c.req.raw, { body: Buffer.concat(chunks) });
    return next();
  };
}
