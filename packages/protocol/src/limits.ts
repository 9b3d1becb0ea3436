// Limits on the task and cancel fields that a worker echoes into events and results, so that an
// echo always fits in a message; and the helpers that measure and cut text by UTF-8 bytes.

/** Longest prompt accepted, in characters. Larger inputs belong in staged input files. */
export const MAX_PROMPT_LENGTH = 512 * 1024;

/** Longest prompt accepted, in UTF-8 bytes (the `prompt_sent` event echoes it). */
export const MAX_PROMPT_BYTES = 512 * 1024;

/**
 * Longest task `timeout` (and worker `taskTimeout`), in ms: 2^31-1, about 24.8 days, the longest
 * delay a Node.js timer takes (a longer one fires at once).
 */
export const MAX_TIMEOUT_MS = 2_147_483_647;

/** Most entries in a task's `metadata` (copied into its result). */
export const MAX_METADATA_ENTRIES = 64;

/** Longest `metadata` key, in characters. */
export const MAX_METADATA_KEY_LENGTH = 128;

/** Longest `metadata` value, in characters. */
export const MAX_METADATA_VALUE_LENGTH = 4096;

/** Largest `metadata` as JSON, in UTF-8 bytes. */
export const MAX_METADATA_BYTES = 16 * 1024;

/** Longest cancel `reason` (quoted in the result and the `error` event), in characters. */
export const MAX_CANCEL_REASON_LENGTH = 1024;

/** Longest agent, provider or model name, in characters (quoted in errors). */
export const MAX_IDENTIFIER_LENGTH = 256;

/** Longest commit message of `op: "commit"`, in characters (echoed in the result). */
export const MAX_COMMIT_MESSAGE_LENGTH = 16 * 1024;

/** Longest git URL, branch, ref, remote or sparse path, in characters (echoed in git events). */
export const MAX_GIT_ARG_LENGTH = 4096;

/** Longest error text in a result, event, lease record or dead letter, in UTF-8 bytes. */
export const MAX_ERROR_BYTES = 4096;

/** Bytes of a message's max_payload kept free for its headers (`Nats-Msg-Id`, `traceparent`). */
export const HEADER_ALLOWANCE = 1024;

/** The server's default max_payload, assumed while a connection has not received the server's INFO. */
export const DEFAULT_MAX_PAYLOAD = 1024 * 1024;

/**
 * Largest message body to publish to a server whose INFO says `maxPayload` (undefined: not known
 * yet), leaving room for headers.
 */
export function messageBudget(maxPayload: number | undefined): number {
  return (maxPayload ?? DEFAULT_MAX_PAYLOAD) - HEADER_ALLOWANCE;
}

/** UTF-8 length of `text` in bytes, without encoding it. */
export function utf8Length(text: string): number {
  let bytes = 0;
  for (let i = 0; i < text.length; i += 1) {
    const code = text.charCodeAt(i);
    if (code < 0x80) bytes += 1;
    else if (code < 0x800) bytes += 2;
    else if (isPair(text, i)) {
      bytes += 4;
      i += 1;
    } else bytes += 3;
  }
  return bytes;
}

/**
 * `text` cut to at most `maxBytes` UTF-8 bytes, ending with `marker` when cut (the marker counts);
 * a character is never split.
 */
export function cutUtf8(text: string, maxBytes: number, marker = "…[truncated]"): string {
  if (utf8Length(text) <= maxBytes) return text;
  const room = Math.max(0, maxBytes - utf8Length(marker));
  let end = 0;
  let bytes = 0;
  while (end < text.length) {
    const code = text.charCodeAt(end);
    const pair = isPair(text, end);
    const width = code < 0x80 ? 1 : code < 0x800 ? 2 : pair ? 4 : 3;
    if (bytes + width > room) break;
    bytes += width;
    end += pair ? 2 : 1;
  }
  return maxBytes >= utf8Length(marker) ? text.slice(0, end) + marker : text.slice(0, end);
}

/** Whether a surrogate pair (one character, 4 bytes in UTF-8) starts at `i`. */
function isPair(text: string, i: number): boolean {
  const code = text.charCodeAt(i);
  const next = text.charCodeAt(i + 1);
  return code >= 0xd800 && code <= 0xdbff && next >= 0xdc00 && next <= 0xdfff;
}
