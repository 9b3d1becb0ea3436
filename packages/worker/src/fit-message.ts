import { cutUtf8 } from "@station-coding/protocol";

/** Strings up to this many bytes are never cut: ids, names, statuses and references stay whole. */
const KEEP_WHOLE = 256;

/**
 * The JSON of `value` in at most `maxBytes` UTF-8 bytes, or undefined when that is impossible.
 *
 * When the JSON is too large, every string longer than the largest byte budget that makes it fit
 * is cut to that budget (marked `…[truncated]`), and `mark` adds what says so (e.g. `truncated:
 * true` and a reference to the whole value). Strings of up to 256 bytes, object keys and arrays are
 * never cut: when cutting long strings is not enough, the answer is undefined.
 */
export function fitJson<T>(value: T, maxBytes: number, mark: (cut: T) => T): string | undefined {
  const whole = JSON.stringify(value);
  if (Buffer.byteLength(whole) <= maxBytes) return whole;
  const attempt = (budget: number): string => JSON.stringify(mark(cutStrings(value, budget) as T));
  const fits = (json: string) => Buffer.byteLength(json) <= maxBytes;
  let best = attempt(KEEP_WHOLE);
  if (!fits(best)) return undefined;
  // The largest budget that fits: a binary search over the longest string's length.
  let low = KEEP_WHOLE;
  let high = Buffer.byteLength(whole);
  while (high - low > 64) {
    const mid = Math.floor((low + high) / 2);
    const json = attempt(mid);
    if (fits(json)) {
      low = mid;
      best = json;
    } else high = mid;
  }
  return best;
}

function cutStrings(value: unknown, budget: number): unknown {
  if (typeof value === "string") return cutUtf8(value, budget);
  if (Array.isArray(value)) return value.map((item) => cutStrings(item, budget));
  if (value !== null && typeof value === "object") {
    return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, cutStrings(v, budget)]));
  }
  return value;
}
