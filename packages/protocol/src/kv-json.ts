import { JetStreamApiError, jetstreamManager } from "@nats-io/jetstream";
import type { JetStreamManager } from "@nats-io/jetstream";
import type { KV, KvEntry } from "@nats-io/kv";
import type { NatsConnection } from "@nats-io/transport-node";
import type { z } from "zod";

/** A decoded KV value with the revision to compare-and-set against. */
export interface Versioned<T> {
  value: T;
  revision: number;
}

/** Whether an error is a failed compare-and-set (the key changed, or already exists). */
export function isCasConflict(err: unknown): boolean {
  if (err instanceof JetStreamApiError) return err.code === 10071 || err.code === 10164;
  return err instanceof Error && /wrong last sequence|key exists/i.test(err.message);
}

/**
 * The keys of a KV bucket (read on a connection, or through a JetStream manager, e.g. one with an
 * API prefix) that have a stored message (live, deleted or purged: read each to tell),
 * optionally matching a key filter with wildcards, sorted.
 *
 * Read from the stream's subject index with stream-info requests, each bounded by the request
 * timeout. `KV.keys()` (an ordered push consumer) can wait forever when a key changes while it
 * reads, as a worker's heartbeat does every few seconds.
 */
export async function storedKeys(
  from: NatsConnection | JetStreamManager,
  bucket: string,
  filter = ">",
): Promise<string[]> {
  const jsm = "streams" in from ? from : await jetstreamManager(from, { checkAPI: false });
  const prefix = `$KV.${bucket}.`;
  const info = await jsm.streams.info(`KV_${bucket}`, { subjects_filter: `${prefix}${filter}` });
  return Object.keys(info.state.subjects ?? {})
    .filter((subject) => subject.startsWith(prefix))
    .map((subject) => subject.slice(prefix.length))
    .sort();
}

/** Reads and validates a JSON value; deleted or purged keys read as undefined. */
export async function getJson<S extends z.ZodType>(
  kv: KV,
  key: string,
  schema: S,
): Promise<Versioned<z.output<S>> | undefined> {
  const entry = await kv.get(key);
  return decodeEntry(entry, schema);
}

/** Decodes a KV entry with `schema`; deleted, purged or missing entries decode as undefined. */
export function decodeEntry<S extends z.ZodType>(
  entry: KvEntry | null,
  schema: S,
): Versioned<z.output<S>> | undefined {
  if (!entry || entry.operation !== "PUT") return undefined;
  return { value: schema.parse(entry.json()), revision: entry.revision };
}

/**
 * Compare-and-set loop: reads the key, computes the next value and writes it only if nobody wrote
 * in between (create when absent, update at the read revision); retries on conflict.
 */
export async function casUpdate<S extends z.ZodType>(
  kv: KV,
  key: string,
  schema: S,
  next: (current: z.output<S> | undefined) => z.output<S>,
  attempts = 20,
  known?: { entry: Versioned<z.output<S>> | undefined },
): Promise<Versioned<z.output<S>>> {
  if (known) {
    // The caller read the key a moment ago: write against that read, saving a round trip. The
    // compare-and-set still guards it; on a conflict the loop below reads afresh.
    const value = next(known.entry?.value);
    const data = JSON.stringify(value);
    try {
      const revision = known.entry
        ? await kv.update(key, data, known.entry.revision)
        : await kv.create(key, data);
      return { value, revision };
    } catch (err) {
      if (!isCasConflict(err)) throw err;
    }
  }
  for (let attempt = 0; ; attempt += 1) {
    const entry = await kv.get(key);
    const current = decodeEntry(entry, schema);
    const value = next(current?.value);
    const data = JSON.stringify(value);
    try {
      const revision = entry ? await kv.update(key, data, entry.revision) : await kv.create(key, data);
      return { value, revision };
    } catch (err) {
      if (!isCasConflict(err) || attempt >= attempts) throw err;
    }
  }
}
