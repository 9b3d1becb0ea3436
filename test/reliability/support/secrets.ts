// Distinctive fake secrets and the rules that say where a secret may legitimately travel.
import { randomBytes } from "node:crypto";
import type { CodingNames } from "@station-coding/protocol";

/** A fake secret the suite watches for, with a name for reports. */
export interface WatchedSecret {
  name: string;
  value: string;
}

const run = randomBytes(6).toString("hex");

/**
 * The API key every worker of the suite gets in its environment (`ANTHROPIC_API_KEY`). It must
 * never leave a worker: not in a message, a log line or an artifact.
 */
export const FAKE_API_KEY = `sk-ant-api03-FAKE-reliability-${run}-do-not-leak`;

/** A fake git token in a shape the redactor's patterns do not know (only registration scrubs it). */
export function fakeToken(label: string): string {
  return `rel${label}${randomBytes(12).toString("hex")}`;
}

/** Where a message travelled, as seen by the wiretap (a stored message read back is its stored subject). */
export interface Carrier {
  subject: string;
  reply?: string;
  stream?: string;
}

/**
 * Whether a secret may legitimately be in a message: the task message itself (a task may carry its
 * token in `workspace.git.token`, Station's existing format) and its deliveries to workers, and the
 * secrets KV bucket (writes, and reads of it by workers). Dead letters are not: they keep the task
 * message without its inline token.
 */
export function isSecretCarrier(names: CodingNames, c: Carrier): boolean {
  if (c.subject === names.taskSubject) return true;
  if (c.reply?.startsWith(`$JS.ACK.${names.streams.tasks}.`)) return true;
  if (c.stream === names.streams.tasks) return true;
  if (c.subject.startsWith(`$KV.${names.kv.secrets}.`)) return true;
  if (c.stream === `KV_${names.kv.secrets}`) return true;
  return false;
}

/** Occurrences of secrets in a text, by secret name. */
export function findSecrets(text: string | Uint8Array, secrets: readonly WatchedSecret[]): string[] {
  const buffer =
    typeof text === "string" ? Buffer.from(text) : Buffer.from(text.buffer, text.byteOffset, text.byteLength);
  return secrets.filter((s) => buffer.includes(s.value)).map((s) => s.name);
}

/** The secrets in a message that must not be there. */
export function secretsIn(
  names: CodingNames,
  carrier: Carrier,
  data: Uint8Array,
  secrets: readonly WatchedSecret[],
): string[] {
  const found = findSecrets(data, secrets);
  return found.length === 0 || isSecretCarrier(names, carrier) ? [] : found;
}
