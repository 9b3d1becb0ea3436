import type { JetStreamClient } from "@nats-io/jetstream";
import type { KV } from "@nats-io/kv";
import { Kvm } from "@nats-io/kv";
import type { NatsConnection } from "@nats-io/transport-node";
import { z } from "zod";
import { ErrorCodes, StationError, ValidationError } from "./errors.js";
import { isCasConflict } from "./kv-json.js";
import type { Versioned } from "./kv-json.js";
import { cutUtf8 } from "./limits.js";
import { validateName } from "./names.js";
import type { TaskResult } from "./result.js";
import { Timestamp } from "./schema-helpers.js";
import type { CodingNames } from "./subjects.js";
import type { Task } from "./task.js";

/** Longest prompt excerpt kept in a task index record, in characters. */
export const TASK_INDEX_PROMPT_LENGTH = 200;
/** Longest error text kept in a task index record, in bytes. */
export const TASK_INDEX_ERROR_BYTES = 512;

/** Where a task is: waiting, running, or one of the final states of its result. */
export const TaskIndexStatus = z.enum(["queued", "running", "completed", "error", "cancelled", "timeout"]);
/** Where a task is. */
export type TaskIndexStatus = z.infer<typeof TaskIndexStatus>;

/** The few result metrics a listing shows. */
export const TaskIndexMetrics = z.object({
  /** Milliseconds from the start of the run to the result. */
  duration: z.number().nonnegative(),
  /** Input plus output tokens. */
  tokens: z.number().nonnegative().optional(),
  inputTokens: z.number().nonnegative().optional(),
  outputTokens: z.number().nonnegative().optional(),
  cost: z.number().nonnegative().optional(),
  toolCalls: z.number().int().nonnegative(),
  model: z.string().optional(),
  provider: z.string().optional(),
});
/** The few result metrics a listing shows. */
export type TaskIndexMetrics = z.infer<typeof TaskIndexMetrics>;

/**
 * One task in the task index bucket (`coding-tasks`, `coding-tasks-<org>`), keyed by taskID: a
 * small record for listing and status, written at each transition (see {@link mergeTaskRecord}).
 */
export const TaskIndexRecord = z.object({
  taskID: z.string(),
  status: TaskIndexStatus,
  /** Bumped by a dead-letter replay: a record of a newer generation replaces the older run's. */
  generation: z.number().int().nonnegative().optional(),
  op: z.string().optional(),
  /** Station session name. */
  session: z.string().optional(),
  /** The worker running or last running the task. */
  worker: z.string().optional(),
  /** Runs started so far. */
  attempts: z.number().int().nonnegative().optional(),
  submittedAt: Timestamp.optional(),
  startedAt: Timestamp.optional(),
  finishedAt: Timestamp.optional(),
  /** The first {@link TASK_INDEX_PROMPT_LENGTH} characters of the prompt. */
  prompt: z.string().optional(),
  metrics: TaskIndexMetrics.optional(),
  /** The result's error code, for a task that did not complete. */
  errorCode: z.string().optional(),
  /** The result's error text, cut to {@link TASK_INDEX_ERROR_BYTES}. */
  error: z.string().optional(),
  /** When this record was last written. */
  updatedAt: Timestamp.optional(),
});
/** One task in the task index. */
export type TaskIndexRecord = z.infer<typeof TaskIndexRecord>;

const FINAL = new Set<TaskIndexStatus>(["completed", "error", "cancelled", "timeout"]);

/** Whether a status is final (the task has its result). */
export function isFinalStatus(status: TaskIndexStatus): boolean {
  return FINAL.has(status);
}

function rank(status: TaskIndexStatus): number {
  return status === "queued" ? 0 : status === "running" ? 1 : 2;
}

/** What is known of a task when it was submitted, filled in by later records that lack it. */
const SUBMISSION_FIELDS = ["submittedAt", "prompt", "op", "session"] as const;
/** And of a run: a final record that overtook its run's `running` record still gets its start. */
const RUN_FIELDS = [...SUBMISSION_FIELDS, "startedAt"] as const;

function excerpt(prompt: string | undefined): string | undefined {
  if (prompt === undefined) return undefined;
  const chars = [...prompt];
  return chars.length <= TASK_INDEX_PROMPT_LENGTH
    ? prompt
    : `${chars.slice(0, TASK_INDEX_PROMPT_LENGTH - 1).join("")}…`;
}

function defined<T extends object>(fields: T): T {
  return Object.fromEntries(Object.entries(fields).filter(([, v]) => v !== undefined)) as T;
}

/** The `queued` record of a task just stored in the task stream. */
export function queuedRecord(task: Task, at: Date = new Date()): TaskIndexRecord {
  return defined({
    taskID: task.taskID,
    status: "queued" as const,
    op: task.op ?? "code",
    session: task.session?.name ?? task.taskID,
    submittedAt: at.toISOString(),
    prompt: excerpt(task.prompt),
  });
}

/** The `running` record of a run a worker starts. */
export function runningRecord(
  task: Task,
  run: { worker: string; attempt: number; generation?: number | undefined },
  at: Date = new Date(),
): TaskIndexRecord {
  return defined({
    taskID: task.taskID,
    status: "running" as const,
    generation: run.generation || undefined,
    op: task.op ?? "code",
    session: task.session?.name ?? task.taskID,
    worker: run.worker,
    attempts: run.attempt,
    startedAt: at.toISOString(),
    prompt: excerpt(task.prompt),
  });
}

/** The final record of a task, from its result. */
export function finishedRecord(result: TaskResult, generation = 0): TaskIndexRecord {
  const m = result.metrics;
  const tokens = m.tokens ? m.tokens.input + m.tokens.output : undefined;
  return defined({
    taskID: result.taskID,
    status: result.status,
    generation: generation || undefined,
    session: result.session.name || undefined,
    worker: result.workerID,
    attempts: m.attempts,
    finishedAt: result.completedAt ?? new Date().toISOString(),
    metrics: defined({
      duration: m.duration,
      tokens,
      inputTokens: m.tokens?.input,
      outputTokens: m.tokens?.output,
      cost: m.cost,
      toolCalls: m.toolCalls,
      model: m.model,
      provider: m.provider,
    }),
    errorCode: result.status === "completed" ? undefined : result.errorCode,
    error:
      result.status === "completed" || result.error === undefined
        ? undefined
        : cutUtf8(result.error, TASK_INDEX_ERROR_BYTES),
  });
}

/** The fields of `older` that `newer` lacks, from the submission (so a late `queued` still adds its prompt). */
function fillIn(
  newer: TaskIndexRecord,
  older: TaskIndexRecord,
  fields: readonly (typeof RUN_FIELDS)[number][] = RUN_FIELDS,
): TaskIndexRecord {
  const filled = { ...newer };
  for (const field of fields) {
    if (filled[field] === undefined && older[field] !== undefined) filled[field] = older[field];
  }
  return filled;
}

/**
 * Whether a `running` record is of a later run than another: a later attempt, or the same attempt
 * started later (a run handed back at shutdown gives its attempt back and runs again elsewhere).
 */
function laterRun(incoming: TaskIndexRecord, current: TaskIndexRecord): boolean {
  const a = incoming.attempts ?? 0;
  const b = current.attempts ?? 0;
  if (a !== b) return a > b;
  return (incoming.startedAt ?? "") > (current.startedAt ?? "");
}

/**
 * The record after `incoming` is applied to `current`, or undefined when nothing changes. Writers
 * race (the dispatcher's `queued` may land after the worker's `running`, a slow `running` after the
 * final record), so the order is decided here, not by arrival:
 * - a newer generation (a dead-letter replay) starts the record over, keeping the submission;
 * - within a generation the status only moves forward (queued, running, final); a later attempt's
 *   `running` (or the same attempt's, started again later) replaces an earlier one's; the first
 *   final record stays;
 * - a record that loses still fills in what the current one lacks of the submission (prompt, time)
 *   and, within a generation, of the run (its start).
 */
export function mergeTaskRecord(
  current: TaskIndexRecord | undefined,
  incoming: TaskIndexRecord,
): TaskIndexRecord | undefined {
  if (!current) return incoming;
  const currentGen = current.generation ?? 0;
  const incomingGen = incoming.generation ?? 0;
  let next: TaskIndexRecord;
  if (incomingGen > currentGen) {
    next = fillIn(incoming, current, SUBMISSION_FIELDS);
  } else if (incomingGen < currentGen) {
    next = fillIn(current, incoming, SUBMISSION_FIELDS);
  } else {
    const r = rank(incoming.status);
    const c = rank(current.status);
    const wins = r > c || (r === 1 && c === 1 && laterRun(incoming, current));
    // The winner keeps what it does not say from the loser (a final record keeps startedAt).
    next = wins ? { ...current, ...incoming } : fillIn(current, incoming);
  }
  const { updatedAt: _a, ...a } = next;
  const { updatedAt: _b, ...b } = current;
  return JSON.stringify(a) === JSON.stringify(b) ? undefined : next;
}

/** Options of {@link TaskIndex}. */
export interface TaskIndexOptions {
  /** Bound of one record write, all compare-and-set tries included, in ms. @default 5000 */
  timeout?: number;
  /** Told about a write that failed (best-effort writes never throw). */
  onError?: (err: unknown, taskID: string) => void;
}

/**
 * The task index of one namespace: one {@link TaskIndexRecord} per task in the `coding-tasks`
 * bucket (per org: `coding-tasks-<org>`), kept as long as results are kept. Writers call
 * {@link TaskIndex.record}, which is best effort: bounded in time, never throws, and never lets a
 * late record undo a later state (compare-and-set with {@link mergeTaskRecord}).
 */
export class TaskIndex {
  private kv: Promise<KV> | undefined;
  private readonly timeout: number;

  /**
   * @param from a connection or a JetStream client (e.g. with an API prefix) to open the bucket on;
   *   it is opened on first use, and again after a failed open.
   */
  constructor(
    private readonly from: NatsConnection | JetStreamClient,
    readonly names: CodingNames,
    private readonly options: TaskIndexOptions = {},
  ) {
    this.timeout = options.timeout ?? 5_000;
  }

  /** The bucket's name. */
  get bucket(): string {
    return this.names.kv.tasks;
  }

  /** The opened bucket (it must exist: see `ensureTopology`). */
  open(): Promise<KV> {
    if (!this.kv) {
      const opened = new Kvm(this.from).open(this.bucket);
      opened.catch(() => (this.kv = undefined));
      this.kv = opened;
    }
    return this.kv;
  }

  /** A task's record and its revision, or undefined; a record that is not one reads as none. */
  async get(taskID: string): Promise<Versioned<TaskIndexRecord> | undefined> {
    const kv = await this.open();
    const entry = await kv.get(validateName("taskID", taskID));
    if (!entry || entry.operation !== "PUT") return undefined;
    const parsed = TaskIndexRecord.safeParse(safeEntryJson(entry.value));
    return parsed.success ? { value: parsed.data, revision: entry.revision } : undefined;
  }

  /**
   * Applies a record with compare-and-set (see {@link mergeTaskRecord}); returns the stored record,
   * or undefined when it changed nothing.
   *
   * @throws StationError when the bucket cannot be written (e.g. permission denied, no server).
   */
  async update(incoming: TaskIndexRecord): Promise<Versioned<TaskIndexRecord> | undefined> {
    const taskID = validateName("taskID", incoming.taskID);
    const kv = await this.open();
    if (incoming.status === "queued" && (incoming.generation ?? 0) === 0) {
      // A submit's record is usually the first: one round trip, and the merge below when it is not.
      const value = { ...incoming, updatedAt: new Date().toISOString() };
      try {
        return { value, revision: await kv.create(taskID, JSON.stringify(value)) };
      } catch (err) {
        if (!isCasConflict(err)) throw err;
      }
    }
    for (let attempt = 0; ; attempt += 1) {
      const entry = await kv.get(taskID);
      const live = entry && entry.operation === "PUT" ? entry : undefined;
      const parsed = live ? TaskIndexRecord.safeParse(safeEntryJson(live.value)) : undefined;
      const next = mergeTaskRecord(parsed?.success ? parsed.data : undefined, incoming);
      if (!next) return undefined;
      const value = { ...next, updatedAt: new Date().toISOString() };
      try {
        // A deleted or junk entry is overwritten at its revision like any other.
        const revision = entry
          ? await kv.update(taskID, JSON.stringify(value), entry.revision)
          : await kv.create(taskID, JSON.stringify(value));
        return { value, revision };
      } catch (err) {
        if (!isCasConflict(err) || attempt >= 20) throw err;
      }
    }
  }

  /**
   * Best-effort {@link update}: resolves true once stored (or when nothing changed), false when it
   * failed or took longer than the timeout (the failure goes to `onError`). Never throws.
   */
  async record(incoming: TaskIndexRecord): Promise<boolean> {
    let timer: NodeJS.Timeout | undefined;
    const expired = new Promise<never>((_, reject) => {
      timer = setTimeout(
        () =>
          reject(
            new StationError(
              ErrorCodes.Timeout,
              `task index ${this.bucket}: writing ${incoming.taskID} took longer than ${this.timeout}ms`,
              { retryable: true },
            ),
          ),
        this.timeout,
      );
    });
    const write = this.update(incoming);
    try {
      await Promise.race([write, expired]);
      return true;
    } catch (err) {
      write.catch(() => undefined);
      this.options.onError?.(err, incoming.taskID);
      return false;
    } finally {
      clearTimeout(timer);
    }
  }
}

function safeEntryJson(value: Uint8Array): unknown {
  try {
    return JSON.parse(new TextDecoder().decode(value));
  } catch {
    return undefined;
  }
}

/** A filter and page of {@link TaskIndexView.list}. */
export interface TaskListQuery {
  status?: TaskIndexStatus | readonly TaskIndexStatus[];
  session?: string;
  worker?: string;
  /** Only tasks whose prompt excerpt contains this text, ignoring case. */
  q?: string;
  /** Only tasks submitted (or, unseen by a dispatcher, started) at or after this time (ISO 8601 or a Date). */
  since?: string | Date;
  /** Only tasks submitted (or started) before this time (ISO 8601 or a Date): with `since`, a time range. */
  until?: string | Date;
  /** Page size, 1 to {@link MAX_TASK_LIST_LIMIT}. @default 50 */
  limit?: number;
  /** The `next` of the previous page. */
  cursor?: string;
}

/** A page of tasks, newest first; `next` is the cursor of the following page, or null at the end. */
export interface TaskListPage {
  items: TaskIndexRecord[];
  next: string | null;
}

/** Largest page {@link TaskIndexView.list} returns. */
export const MAX_TASK_LIST_LIMIT = 1000;

interface Slot {
  /** Sort time in epoch ms: submitted, else started, else finished. */
  at: number;
  record: TaskIndexRecord;
}

function sortTime(record: TaskIndexRecord): number {
  const stamp = record.submittedAt ?? record.startedAt ?? record.finishedAt ?? record.updatedAt;
  const ms = stamp === undefined ? Number.NaN : Date.parse(stamp);
  return Number.isFinite(ms) ? ms : 0;
}

/** Newest first; ties by taskID, descending, so the order is total and a cursor is exact. */
function before(aAt: number, aID: string, bAt: number, bID: string): boolean {
  return aAt !== bAt ? aAt > bAt : aID > bID;
}

function encodeCursor(slot: Slot): string {
  return Buffer.from(`${slot.at}:${slot.record.taskID}`).toString("base64url");
}

function decodeCursor(cursor: string): { at: number; taskID: string } {
  const text = Buffer.from(cursor, "base64url").toString();
  const i = text.indexOf(":");
  const at = Number(text.slice(0, i));
  const taskID = text.slice(i + 1);
  if (i <= 0 || !Number.isSafeInteger(at) || taskID === "" || cursor.length > 400) {
    throw new ValidationError("cursor", "format", "cursor: not a cursor from a previous page");
  }
  return { at, taskID };
}

function timeMs(field: "since" | "until", time: string | Date): number {
  const ms = time instanceof Date ? time.getTime() : Date.parse(time);
  if (!Number.isFinite(ms)) {
    throw new ValidationError(
      field,
      "format",
      `${field} ${JSON.stringify(String(time))}: not an ISO 8601 time`,
    );
  }
  return ms;
}

/** Options of {@link TaskIndexView.start}. */
export interface TaskIndexViewOptions {
  /** Told about each change after the initial load (e.g. to count tasks by status). */
  onChange?: (record: TaskIndexRecord, previous: TaskIndexRecord | undefined) => void;
  /** Told when the watch ends with an error (the view then stops following). */
  onError?: (err: unknown) => void;
}

/**
 * An in-memory view of a task index, always current: a KV watch keeps it, and a sorted array
 * (newest first) keeps listing fast: a page is a binary search to the cursor and a scan that stops
 * once the page is full (or past `since`). Memory grows with the bucket (a few hundred bytes a task).
 */
export class TaskIndexView {
  private readonly byID = new Map<string, Slot>();
  /** Newest first. */
  private readonly sorted: Slot[] = [];
  private readonly counts = new Map<TaskIndexStatus, number>();
  private stopper: (() => void) | undefined;
  private done: Promise<void> = Promise.resolve();

  /** An empty view, filled with {@link apply}; {@link start} makes one that follows a bucket. */
  constructor(private readonly options: TaskIndexViewOptions = {}) {}

  /**
   * Starts a view of `index`'s bucket: resolves once every record stored when it started is in,
   * then follows every change until {@link stop}.
   */
  static async start(index: TaskIndex, options: TaskIndexViewOptions = {}): Promise<TaskIndexView> {
    const view = new TaskIndexView(options);
    const kv = await index.open();
    const watch = await kv.watch({ key: ">" });
    view.stopper = () => watch.stop();
    let initial = true;
    const loading = new Map<string, TaskIndexRecord>();
    let markReady!: () => void;
    const ready = new Promise<void>((resolve) => (markReady = resolve));
    const becomeReady = (): void => {
      if (!initial) return;
      initial = false;
      view.load(loading.values());
      loading.clear();
      markReady();
    };
    view.done = (async () => {
      try {
        for await (const entry of watch) {
          const key = entry.key;
          const parsed =
            entry.operation === "PUT" ? TaskIndexRecord.safeParse(safeEntryJson(entry.value)) : undefined;
          const record = parsed?.success && parsed.data.taskID === key ? parsed.data : undefined;
          if (initial) {
            // The initial load arrives oldest first: sorted once at the end, not inserted one by one.
            if (record) loading.set(key, record);
            else loading.delete(key);
          } else if (record) {
            view.apply(record);
          } else {
            view.remove(key);
          }
          if (entry.delta === 0) becomeReady();
        }
      } catch (err) {
        options.onError?.(err);
      } finally {
        becomeReady();
      }
    })();
    // An empty bucket delivers nothing to say that the initial load is over.
    const status = await kv.status();
    if (status.values === 0) becomeReady();
    await ready;
    return view;
  }

  /** Tasks in the view. */
  get size(): number {
    return this.sorted.length;
  }

  /** Tasks in the view by status. */
  countByStatus(): Record<TaskIndexStatus, number> {
    const out = {} as Record<TaskIndexStatus, number>;
    for (const status of TaskIndexStatus.options) out[status] = this.counts.get(status) ?? 0;
    return out;
  }

  /** Every record in the view, newest first (a scan of the whole view: for aggregates). */
  *records(): IterableIterator<TaskIndexRecord> {
    for (const slot of this.sorted) yield slot.record;
  }

  /** A task's record, or undefined. */
  get(taskID: string): TaskIndexRecord | undefined {
    return this.byID.get(taskID)?.record;
  }

  /**
   * A page of tasks matching every given filter, newest first.
   *
   * @throws ValidationError for a bad limit, since, until or cursor.
   */
  list(query: TaskListQuery = {}): TaskListPage {
    const limit = query.limit ?? 50;
    if (!Number.isInteger(limit) || limit < 1 || limit > MAX_TASK_LIST_LIMIT) {
      throw new ValidationError(
        "limit",
        "range",
        `limit ${JSON.stringify(limit)}: must be an integer from 1 to ${MAX_TASK_LIST_LIMIT}`,
      );
    }
    const statuses =
      query.status === undefined
        ? undefined
        : new Set(typeof query.status === "string" ? [query.status] : query.status);
    const since = query.since === undefined ? undefined : timeMs("since", query.since);
    const until = query.until === undefined ? undefined : timeMs("until", query.until);
    const text = query.q === undefined || query.q === "" ? undefined : query.q.toLowerCase();
    let start = 0;
    if (query.cursor !== undefined) {
      const c = decodeCursor(query.cursor);
      start = this.firstAfter(c.at, c.taskID);
    }
    // Newest first: the tasks before `until` start at the first slot older than it.
    if (until !== undefined) start = Math.max(start, this.firstAfterOrAt(until, ""));
    const items: TaskIndexRecord[] = [];
    let last: Slot | undefined;
    let i = start;
    for (; i < this.sorted.length && items.length < limit; i += 1) {
      const slot = this.sorted[i] as Slot;
      if (since !== undefined && slot.at < since) {
        i = this.sorted.length;
        break;
      }
      const r = slot.record;
      if (statuses && !statuses.has(r.status)) continue;
      if (query.session !== undefined && r.session !== query.session) continue;
      if (query.worker !== undefined && r.worker !== query.worker) continue;
      if (text !== undefined && !(r.prompt ?? "").toLowerCase().includes(text)) continue;
      items.push(r);
      last = slot;
    }
    const more = items.length === limit && i < this.sorted.length && last !== undefined;
    return { items, next: more && last ? encodeCursor(last) : null };
  }

  /** Puts many records in at once (sorted once: fast for a whole bucket), without telling `onChange`. */
  load(records: Iterable<TaskIndexRecord>): void {
    for (const record of records) {
      const previous = this.byID.get(record.taskID);
      if (previous) this.count(previous.record.status, -1);
      this.byID.set(record.taskID, { at: sortTime(record), record });
      this.count(record.status, 1);
    }
    this.sorted.length = 0;
    for (const slot of this.byID.values()) this.sorted.push(slot);
    this.sorted.sort((a, b) => (before(a.at, a.record.taskID, b.at, b.record.taskID) ? -1 : 1));
  }

  /** Puts a record in (replacing the task's previous one). */
  apply(record: TaskIndexRecord, notify = true): void {
    const previous = this.byID.get(record.taskID);
    const at = sortTime(record);
    const prior = previous?.record;
    if (previous) {
      this.count(previous.record.status, -1);
      if (previous.at === at) {
        previous.record = record;
        this.count(record.status, 1);
        if (notify) this.options.onChange?.(record, prior);
        return;
      }
      this.sorted.splice(this.indexOf(previous), 1);
    }
    const slot: Slot = { at, record };
    this.sorted.splice(this.firstAfterOrAt(at, record.taskID), 0, slot);
    this.byID.set(record.taskID, slot);
    this.count(record.status, 1);
    if (notify) this.options.onChange?.(record, prior);
  }

  /** Takes a task out (its record was deleted or expired). */
  remove(taskID: string): void {
    const slot = this.byID.get(taskID);
    if (!slot) return;
    this.sorted.splice(this.indexOf(slot), 1);
    this.byID.delete(taskID);
    this.count(slot.record.status, -1);
  }

  /** Stops following the bucket. */
  async stop(): Promise<void> {
    this.stopper?.();
    await this.done;
  }

  private count(status: TaskIndexStatus, by: number): void {
    this.counts.set(status, (this.counts.get(status) ?? 0) + by);
  }

  /** Index of the first slot that sorts at or after (`at`, `taskID`). */
  private firstAfterOrAt(at: number, taskID: string): number {
    let lo = 0;
    let hi = this.sorted.length;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      const s = this.sorted[mid] as Slot;
      if (before(s.at, s.record.taskID, at, taskID)) lo = mid + 1;
      else hi = mid;
    }
    return lo;
  }

  /** Index of the first slot strictly after (`at`, `taskID`). */
  private firstAfter(at: number, taskID: string): number {
    const i = this.firstAfterOrAt(at, taskID);
    const s = this.sorted[i];
    return s && s.at === at && s.record.taskID === taskID ? i + 1 : i;
  }

  private indexOf(slot: Slot): number {
    const i = this.firstAfterOrAt(slot.at, slot.record.taskID);
    if (this.sorted[i] !== slot)
      throw new Error(`task index view: ${slot.record.taskID} is not where it sorts`);
    return i;
  }
}
