/**
 * The JSON value in a message body or string, or undefined when it is not JSON. For data from the
 * wire that a schema checks next (`Schema.safeParse(safeJson(msg.data))`): junk is no value.
 */
export function safeJson(data: Uint8Array | string): unknown {
  try {
    return JSON.parse(typeof data === "string" ? data : new TextDecoder().decode(data));
  } catch {
    return undefined;
  }
}

/**
 * `fields` without its undefined entries: optional fields built from optional inputs, e.g.
 * `{ name, ...withoutUndefined({ timeout, metadata }) }`.
 */
export function withoutUndefined<T extends object>(fields: T): { [K in keyof T]?: Exclude<T[K], undefined> } {
  return Object.fromEntries(Object.entries(fields).filter(([, value]) => value !== undefined)) as {
    [K in keyof T]?: Exclude<T[K], undefined>;
  };
}
