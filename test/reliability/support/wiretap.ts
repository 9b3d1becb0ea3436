// A subscription on `>` for the whole life of a scenario: it counts result messages per task (every
// publish, also those the results stream drops as duplicates or replaces), notices the events the
// fault injectors wait for, and scans every message for secrets that must not travel there.
import { connect } from "@nats-io/transport-node";
import type { Msg, MsgHdrs, NatsConnection } from "@nats-io/transport-node";
import type { CodingNames, TaskResult } from "@station-coding/protocol";
import { safeJson, taskIDFromSubject } from "@station-coding/protocol";
import type { WatchedSecret } from "./secrets.js";
import { findSecrets, isSecretCarrier, secretsIn } from "./secrets.js";

/** A result message as the wiretap saw it. */
export interface SeenResult {
  at: number;
  result: TaskResult;
  /** The message as published: two results are distinct when these differ. */
  raw: string;
}

/** A secret found where it must not be. */
export interface Leak {
  secret: string;
  where: string;
}

/** A task event as the wiretap saw it (only the fields the scenarios use). */
export interface SeenEvent {
  at: number;
  taskID: string;
  seq: number;
  type: string;
  workerID?: string;
  attempt?: number;
}

type Listener = (kind: "event" | "result", value: SeenEvent | SeenResult) => void;

const decoder = new TextDecoder();

function header(h: MsgHdrs | undefined, key: string): string | undefined {
  return h?.get(key) || undefined;
}

/** Subscribes to `>` and keeps the figures the scenarios and the secret check need. */
export class Wiretap {
  /** Result messages per taskID, in arrival order. */
  readonly results = new Map<string, SeenResult[]>();
  /** Highest delivery count of each task message seen delivered to a worker, by taskID. */
  readonly deliveries = new Map<string, number>();
  /** Every subject a message was published on or delivered with (for the hostile-input checks). */
  readonly subjects = new Set<string>();
  readonly leaks: Leak[] = [];
  messages = 0;
  bytes = 0;
  private readonly listeners = new Set<Listener>();

  private constructor(
    readonly nc: NatsConnection,
    private readonly names: CodingNames,
    private readonly secrets: WatchedSecret[],
  ) {}

  /** Connects to `servers` and starts listening. */
  static async start(servers: string[], names: CodingNames, secrets: WatchedSecret[]): Promise<Wiretap> {
    const nc = await connect({
      servers,
      name: "reliability-wiretap",
      maxReconnectAttempts: -1,
      reconnectTimeWait: 100,
    });
    const tap = new Wiretap(nc, names, secrets);
    nc.subscribe(">", { callback: (_err, msg) => tap.onMessage(msg) });
    await nc.flush();
    return tap;
  }

  /** Adds a secret to watch from now on. */
  watch(secret: WatchedSecret): void {
    this.secrets.push(secret);
  }

  /** Number of result messages seen for a task. */
  resultCount(taskID: string): number {
    return this.results.get(taskID)?.length ?? 0;
  }

  /** Calls `listener` for every task event and result seen from now on; returns the unsubscribe. */
  on(listener: Listener): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  async close(): Promise<void> {
    this.listeners.clear();
    await this.nc.close().catch(() => undefined);
  }

  private onMessage(msg: Msg): void {
    this.messages += 1;
    this.bytes += msg.data.byteLength;
    this.subjects.add(msg.subject);
    this.scan(msg);
    const { names } = this;
    // A message a consumer delivers shows its stored subject: it is a read, not a publish.
    if (msg.reply?.startsWith("$JS.ACK.")) {
      if (msg.subject === names.taskSubject) this.onDelivery(msg);
      return;
    }
    if (msg.subject.startsWith(`${names.resultPrefix}.`)) {
      const taskID = taskIDFromSubject(msg.subject) ?? "";
      const raw = decoder.decode(msg.data);
      const seen: SeenResult = { at: Date.now(), result: safeJson(msg.data) as TaskResult, raw };
      const list = this.results.get(taskID) ?? [];
      list.push(seen);
      this.results.set(taskID, list);
      for (const listener of this.listeners) listener("result", seen);
    } else if (msg.subject.startsWith(`${names.streamPrefix}.`) && this.listeners.size > 0) {
      const event = safeJson(msg.data) as Omit<SeenEvent, "at"> | undefined;
      if (event && typeof event.taskID === "string") {
        for (const listener of this.listeners) listener("event", { ...event, at: Date.now() });
      }
    }
  }

  private onDelivery(msg: Msg): void {
    // $JS.ACK.<stream>.<consumer>.<delivered>.<stream seq>.<consumer seq>.<ts>.<pending>
    const delivered = Number(msg.reply?.split(".")[4] ?? 0);
    const taskID = (safeJson(msg.data) as { taskID?: unknown } | undefined)?.taskID;
    if (typeof taskID === "string") {
      this.deliveries.set(taskID, Math.max(delivered, this.deliveries.get(taskID) ?? 0));
    }
  }

  private scan(msg: Msg): void {
    if (this.secrets.length === 0) return;
    const carrier = {
      subject: msg.subject,
      ...(msg.reply ? { reply: msg.reply } : {}),
      ...(header(msg.headers, "Nats-Stream") ? { stream: header(msg.headers, "Nats-Stream") } : {}),
    };
    const headerText = msg.headers ? [...msg.headers.keys()].map((k) => msg.headers?.get(k)).join("\n") : "";
    const inHeaders = isSecretCarrier(this.names, carrier) ? [] : findSecrets(headerText, this.secrets);
    for (const secret of [...secretsIn(this.names, carrier, msg.data, this.secrets), ...inHeaders]) {
      this.leaks.push({ secret, where: `message on ${msg.subject}` });
    }
    // Stored messages read back through the JetStream API arrive base64-encoded: decode and judge
    // them by the subject they were stored under.
    if (msg.data.byteLength > 0 && msg.data[0] === 0x7b && msg.subject.startsWith("_INBOX")) {
      const text = decoder.decode(msg.data);
      if (!text.includes("stream_msg_get_response")) return;
      const parsed = safeJson(msg.data) as { message?: { subject?: string; data?: string; hdrs?: string } };
      const stored = parsed?.message;
      if (!stored?.subject) return;
      const data = Buffer.from(stored.data ?? "", "base64");
      const hdrs = Buffer.from(stored.hdrs ?? "", "base64");
      const from = { subject: stored.subject };
      const inStored = [
        ...secretsIn(this.names, from, data, this.secrets),
        ...(isSecretCarrier(this.names, from) ? [] : findSecrets(hdrs, this.secrets)),
      ];
      for (const secret of inStored)
        this.leaks.push({ secret, where: `stored message on ${stored.subject}` });
    }
  }
}
